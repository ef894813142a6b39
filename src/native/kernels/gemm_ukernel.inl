// The micro-kernel body, shared by every instruction set. The including file defines
// GS_UK_TARGET (a target attribute string) and a traits struct S with the vector type V, its
// width W and zero / load / bcast / fma / add / store, all marked GS_UK_INLINE.
// The accumulators live in MR x NV vector registers for the whole k loop; A values are
// broadcast one row at a time against NV vectors of B.

template <class S, int MR, int NV>
__attribute__((target(GS_UK_TARGET))) void micro_kernel(int64_t k, const typename S::T* __restrict a,
                                                       const typename S::T* __restrict b, int64_t ldb,
                                                       typename S::T* c, int64_t ldc, bool accumulate) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int W = S::W;
  V r[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    // The C tile is needed only after the k loop: start fetching it now.
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + NV * W - 1, 1);
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) r[i][j] = S::zero();
  }
#pragma GCC unroll 2
  for (int64_t p = 0; p < k; p++) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) bv[j] = S::load(b + j * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const V av = S::bcast(a + i);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) r[i][j] = S::fma(av, bv[j], r[i][j]);
    }
    a += MR;
    b += ldb;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) {
      T* cp = c + i * ldc + j * W;
      V v = r[i][j];
      if (accumulate) v = S::add(S::load(cp), v);
      S::store(cp, v);
    }
  }
}

template <class S, int MR, int NV>
MicroKernel<typename S::T> make_micro_kernel() {
  MicroKernel<typename S::T> uk;
  uk.mr = MR;
  uk.nr = NV * S::W;
  uk.run = &micro_kernel<S, MR, NV>;
  return uk;
}

// MR rows of a narrow product: each step of k broadcasts one value of each row against the NV
// vectors of that step's B row. With TA the rows' values at one depth are adjacent (one cache
// line for 16 floats); without, each row is its own sequential stream.
template <class S, int MR, int NV, bool TA>
__attribute__((target(GS_UK_TARGET))) void narrow_tile(int64_t k, const typename S::T* __restrict a, int64_t lda,
                                                      const typename S::T* __restrict b, typename S::T* c,
                                                      int64_t ldc, int rows, int n, bool accumulate) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int W = S::W;
  V r[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) r[i][j] = S::zero();
  for (int64_t p = 0; p < k; p++) {
    V bv[NV];
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) bv[j] = S::load(b + p * (NV * W) + j * W);
    const T* ap = TA ? a + p * lda : a + p;
    // With TA each step starts a new line of A, lda apart: the stride prefetcher sees it late.
    if (TA) __builtin_prefetch(ap + 8 * lda);
    // Without, each row is a stream of its own; one line ahead on each, once a line.
    if (!TA && (p % (64 / sizeof(T))) == 0)
#pragma GCC unroll 16
      for (int i = 0; i < MR; i++) __builtin_prefetch(ap + i * lda + 2 * (64 / sizeof(T)));
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const V av = S::bcast(TA ? ap + i : ap + i * lda);
#pragma GCC unroll 2
      for (int j = 0; j < NV; j++) r[i][j] = S::fma(av, bv[j], r[i][j]);
    }
  }
  // Every accumulator is stored at an index known at compile time: indexed by the run-time
  // `rows`, the compiler kept them in memory and stored all twelve at every step of k (a third of
  // the speed a 256x784 by 784x10 product gets when they stay in registers).
  alignas(64) T tile[MR][NV * W];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 2
    for (int j = 0; j < NV; j++) S::store(tile[i] + j * W, r[i][j]);
  for (int i = 0; i < rows; i++) {
    T* ci = c + i * ldc;
    if (accumulate)
      for (int q = 0; q < n; q++) ci[q] += tile[i][q];
    else
      for (int q = 0; q < n; q++) ci[q] = tile[i][q];
  }
}

template <class S, int MR, int NV>
void narrow_call(int64_t k, const typename S::T* a, int64_t lda, bool ta, const typename S::T* b, typename S::T* c,
                int64_t ldc, int rows, int n, bool accumulate) {
  if (ta)
    narrow_tile<S, MR, NV, true>(k, a, lda, b, c, ldc, rows, n, accumulate);
  else
    narrow_tile<S, MR, NV, false>(k, a, lda, b, c, ldc, rows, n, accumulate);
}

template <class S, int MR, int NV>
NarrowKernel<typename S::T> make_narrow_kernel() {
  NarrowKernel<typename S::T> nk;
  nk.mr = MR;
  nk.width = NV * S::W;
  nk.run = &narrow_call<S, MR, NV>;
  return nk;
}

// MR x NR dot products of rows of A and rows of B: per step, one vector of each row and MR * NR
// multiply-adds into as many accumulators, summed across lanes at the end.
template <class S, int MR, int NR>
__attribute__((target(GS_UK_TARGET))) void dot_tile(int64_t k, const typename S::T* a, int64_t lda,
                                                   const typename S::T* b, int64_t ldb, typename S::T* c, int64_t ldc,
                                                   int rows, int cols, bool accumulate) {
  using T = typename S::T;
  using V = typename S::V;
  constexpr int W = S::W;
  const T* ap[MR];
  const T* bp[NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++) ap[i] = a + (i < rows ? i : rows - 1) * lda;
#pragma GCC unroll 8
  for (int j = 0; j < NR; j++) bp[j] = b + (j < cols ? j : cols - 1) * ldb;
  V r[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++) r[i][j] = S::zero();
  int64_t p = 0;
  for (; p + W <= k; p += W) {
    V av[MR], bv[NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) av[i] = S::load(ap[i] + p);
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++) bv[j] = S::load(bp[j] + p);
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
      for (int j = 0; j < NR; j++) r[i][j] = S::fma(av[i], bv[j], r[i][j]);
  }
  // Stored at compile-time indices, so that the accumulators stay in registers (see narrow_tile).
  alignas(64) T lanes[MR][NR][W];
#pragma GCC unroll 8
  for (int i = 0; i < MR; i++)
#pragma GCC unroll 8
    for (int j = 0; j < NR; j++) S::store(lanes[i][j], r[i][j]);
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < cols; j++) {
      const T* l = lanes[i][j];
      T sum = l[0];
      for (int w = 1; w < W; w++) sum += l[w];
      for (int64_t q = p; q < k; q++) sum += ap[i][q] * bp[j][q];
      T* cp = c + i * ldc + j;
      *cp = accumulate ? *cp + sum : sum;
    }
  }
}

template <class S, int MR, int NR>
DotKernel<typename S::T> make_dot_kernel() {
  DotKernel<typename S::T> dk;
  dk.mr = MR;
  dk.nr = NR;
  dk.run = &dot_tile<S, MR, NR>;
  return dk;
}

// Both dtypes of an instruction set share its register tile shapes: MR rows, NV vectors wide for
// the general kernel; N1 rows one vector wide and N2 rows two vectors wide for narrow products;
// DR x DC dot products for small ones along a long depth.
template <class F32, class F64, int MR, int NV, int N1, int N2, int DR, int DC>
MicroKernels make_micro_kernels() {
  MicroKernels k;
  k.f32 = make_micro_kernel<F32, MR, NV>();
  k.f64 = make_micro_kernel<F64, MR, NV>();
  k.f32_dot = make_dot_kernel<F32, DR, DC>();
  k.f64_dot = make_dot_kernel<F64, DR, DC>();
  k.f32_narrow[0] = make_narrow_kernel<F32, N1, 1>();
  k.f32_narrow[1] = make_narrow_kernel<F32, N2, 2>();
  k.f64_narrow[0] = make_narrow_kernel<F64, N1, 1>();
  k.f64_narrow[1] = make_narrow_kernel<F64, N2, 2>();
  return k;
}
