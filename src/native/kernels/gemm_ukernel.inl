// The micro-kernel body, shared by every instruction set. The including file defines
// GS_UK_TARGET (a target attribute string) and a traits struct S with the vector type V, its
// width W and zero / load / bcast / fma / add / store, all marked GS_UK_INLINE.
// The accumulators live in MR x NV vector registers for the whole k loop; A values are
// broadcast one row at a time against NV vectors of B.

template <class S, int MR, int NV>
__attribute__((target(GS_UK_TARGET))) void micro_kernel(int64_t k, const typename S::T* __restrict a,
                                                       const typename S::T* __restrict b,
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
    b += NV * W;
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

// Both dtypes of an instruction set share its register tile shape (MR rows, NV vectors wide).
template <class F32, class F64, int MR, int NV>
MicroKernels make_micro_kernels() {
  MicroKernels k;
  k.f32 = make_micro_kernel<F32, MR, NV>();
  k.f64 = make_micro_kernel<F64, MR, NV>();
  return k;
}
