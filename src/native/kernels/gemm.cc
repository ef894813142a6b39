// Cache-blocked GEMM in the BLIS layout: B is packed into kc x nc panels (L3), A into mc x kc
// blocks (L2), and a register-tiled micro-kernel streams nr-wide slivers of B (L1) against
// mr-high slivers of A. Packing zero-pads partial panels so the micro-kernel never branches.
#include "kernels/gemm.h"
#include "kernels/memory.h"

#include <emmintrin.h>
#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/gemm_ukernel.h"
#include "kernels/threads.h"

namespace gs {
namespace {

enum Level { kSse2 = 0, kAvx2 = 1, kAvx512 = 2 };
const char* kLevelNames[] = {"sse2", "avx2", "avx512f"};

Level detect() {
  __builtin_cpu_init();
  // libgcc's checks include the OS (XCR0) having enabled the wider register state.
  if (__builtin_cpu_supports("avx512f")) return kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return kAvx2;
  return kSse2;
}

const Level g_hw = detect();
std::atomic<int> g_level{g_hw};

MicroKernels kernels_for(Level l) {
  static const MicroKernels table[] = {micro_kernels_sse2(), micro_kernels_avx2(), micro_kernels_avx512()};
  return table[l];
}

template <class T> MicroKernel<T> pick(const MicroKernels& k);
template <> MicroKernel<float> pick<float>(const MicroKernels& k) { return k.f32; }
template <> MicroKernel<double> pick<double>(const MicroKernels& k) { return k.f64; }

// The narrowest narrow kernel that holds n columns, or none (mr 0) when n is wider than two vectors.
template <class T> NarrowKernel<T> pick_narrow(const MicroKernels& k, int64_t n);
template <class T>
NarrowKernel<T> first_holding(const NarrowKernel<T> (&ks)[2], int64_t n) {
  for (const auto& nk : ks)
    if (n <= nk.width) return nk;
  return {};
}
template <class T> DotKernel<T> pick_dot(const MicroKernels& k);
template <> DotKernel<float> pick_dot<float>(const MicroKernels& k) { return k.f32_dot; }
template <> DotKernel<double> pick_dot<double>(const MicroKernels& k) { return k.f64_dot; }
template <> NarrowKernel<float> pick_narrow<float>(const MicroKernels& k, int64_t n) { return first_holding(k.f32_narrow, n); }
template <> NarrowKernel<double> pick_narrow<double>(const MicroKernels& k, int64_t n) { return first_holding(k.f64_narrow, n); }

struct ScratchDeleter {
  size_t bytes;
  void operator()(void* p) const { scratch_free(p, static_cast<int64_t>(bytes)); }
};
template <class T>
std::unique_ptr<T[], ScratchDeleter> scratch(int64_t count) {
  size_t bytes = (static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T) + 63) & ~size_t(63);
  return std::unique_ptr<T[], ScratchDeleter>(static_cast<T*>(scratch_alloc(static_cast<int64_t>(bytes))), ScratchDeleter{bytes});
}

// One matrix product C (m x n, row stride n) = op(A) op(B), with A and B as in backend.ts.
template <class T>
struct Problem {
  const T* a;
  const T* b;
  T* c;
  int64_t m, n, k;
  bool ta, tb;
};

// One sliver from `lines` source lines (rows of A, or columns of B when transposed), each kc
// long and ld apart, laid out depth-major (width values a step) as the micro-kernel reads it;
// the lanes past `lines` are zero so edge tiles need no branch in the micro-kernel.
template <class T>
inline void pack_depth_major(const T* src, int64_t ld, int lines, int width, int64_t kc, T* dst) {
  if constexpr (std::is_same_v<T, float>) {
    if (lines == width && width % 2 == 0) {
      // A whole sliver of floats, as 4 x 4 transposes (SSE2, in every x86-64) and, for AVX2's
      // 6-row slivers, a 2 x 4 interleave for the last two lines: one element at a time, packing A
      // took a tenth of a 256^3 product.
      int64_t p = 0;
      for (; p + 4 <= kc; p += 4) {
        int l = 0;
        for (; l + 4 <= width; l += 4) {
          __m128 r0 = _mm_loadu_ps(src + (l + 0) * ld + p), r1 = _mm_loadu_ps(src + (l + 1) * ld + p);
          __m128 r2 = _mm_loadu_ps(src + (l + 2) * ld + p), r3 = _mm_loadu_ps(src + (l + 3) * ld + p);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          _mm_storeu_ps(dst + (p + 0) * width + l, r0);
          _mm_storeu_ps(dst + (p + 1) * width + l, r1);
          _mm_storeu_ps(dst + (p + 2) * width + l, r2);
          _mm_storeu_ps(dst + (p + 3) * width + l, r3);
        }
        if (l < width) {
          const __m128 r0 = _mm_loadu_ps(src + l * ld + p), r1 = _mm_loadu_ps(src + (l + 1) * ld + p);
          const __m128 lo = _mm_unpacklo_ps(r0, r1), hi = _mm_unpackhi_ps(r0, r1);
          _mm_storel_pi(reinterpret_cast<__m64*>(dst + (p + 0) * width + l), lo);
          _mm_storeh_pi(reinterpret_cast<__m64*>(dst + (p + 1) * width + l), lo);
          _mm_storel_pi(reinterpret_cast<__m64*>(dst + (p + 2) * width + l), hi);
          _mm_storeh_pi(reinterpret_cast<__m64*>(dst + (p + 3) * width + l), hi);
        }
      }
      for (; p < kc; p++)
        for (int l = 0; l < width; l++) dst[p * width + l] = src[l * ld + p];
      return;
    }
  }
  for (int l = 0; l < lines; l++, src += ld)
    for (int64_t p = 0; p < kc; p++) dst[p * width + l] = src[p];
  for (int l = lines; l < width; l++)
    for (int64_t p = 0; p < kc; p++) dst[p * width + l] = T(0);
}

// Rows [i0, i0+mc) and depth [p0, p0+kc) of op(A), as mr-high slivers (p-major inside).
template <class T>
void pack_a(const Problem<T>& P, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, T* dst) {
  for (int64_t ir = 0; ir < mc; ir += mr, dst += mr * kc) {
    const int rows = static_cast<int>(std::min<int64_t>(mr, mc - ir));
    if (P.ta) {
      for (int64_t p = 0; p < kc; p++) {
        const T* src = P.a + (p0 + p) * P.m + i0 + ir;
        T* d = dst + p * mr;
        for (int r = 0; r < rows; r++) d[r] = src[r];
        for (int r = rows; r < mr; r++) d[r] = T(0);
      }
    } else {
      pack_depth_major(P.a + (i0 + ir) * P.k + p0, P.k, rows, mr, kc, dst);
    }
  }
}

// Columns [j0+jr_lo*nr, ...) of op(B) for slivers [jr_lo, jr_hi), depth [p0, p0+kc).
template <class T>
void pack_b(const Problem<T>& P, int64_t j0, int64_t nc, int64_t p0, int64_t kc, int nr, int64_t jr_lo,
            int64_t jr_hi, T* panel) {
  if (jr_lo >= jr_hi) return;
  if (!P.tb) {
    // Row by row: each row of B is read once, sequentially. Walking one sliver at a time instead
    // would read kc rows n elements apart, which for power-of-two n thrashes the caches and TLB.
    for (int64_t p = 0; p < kc; p++) {
      const T* row = P.b + (p0 + p) * P.n + j0;
      for (int64_t s = jr_lo; s < jr_hi; s++) {
        const int64_t jr = s * nr;
        T* d = panel + s * nr * kc + p * nr;
        const int cols = static_cast<int>(std::min<int64_t>(nr, nc - jr));
        if (cols == nr) {
          std::memcpy(d, row + jr, sizeof(T) * static_cast<size_t>(nr));
        } else {
          for (int c = 0; c < cols; c++) d[c] = row[jr + c];
          for (int c = cols; c < nr; c++) d[c] = T(0);
        }
      }
    }
    return;
  }
  for (int64_t s = jr_lo; s < jr_hi; s++) {
    const int64_t jr = s * nr;
    const int cols = static_cast<int>(std::min<int64_t>(nr, nc - jr));
    pack_depth_major(P.b + (j0 + jr) * P.k + p0, P.k, cols, nr, kc, panel + s * nr * kc);
  }
}

// The tiles of one packed A block against B slivers [jr_lo, jr_hi). Edge tiles go through a
// scratch tile so the micro-kernel always writes a full mr x nr block.
// With `direct`, whole slivers of B are read where they lie (row-major B, rows P.n apart; see
// b_direct) and only the last, partial one from the panel.
template <class T>
void macro_kernel(const MicroKernel<T>& uk, const Problem<T>& P, const T* ablock, const T* bpanel, int64_t i0,
                  int64_t mc, int64_t j0, int64_t nc, int64_t p0, int64_t kc, bool accumulate, int64_t jr_lo,
                  int64_t jr_hi, bool direct) {
  const int mr = uk.mr, nr = uk.nr;
  alignas(64) T tile[16 * 64];
  for (int64_t s = jr_lo; s < jr_hi; s++) {
    const int64_t jr = s * nr;
    const int cols = static_cast<int>(std::min<int64_t>(nr, nc - jr));
    const bool in_place = direct && cols == nr;
    const T* bp = in_place ? P.b + p0 * P.n + j0 + jr : bpanel + jr * kc;
    const int64_t ldb = in_place ? P.n : nr;
    for (int64_t ir = 0; ir < mc; ir += mr) {
      const int rows = static_cast<int>(std::min<int64_t>(mr, mc - ir));
      T* c = P.c + (i0 + ir) * P.n + j0 + jr;
      const T* ap = ablock + ir * kc;
      if (rows == mr && cols == nr) {
        uk.run(kc, ap, bp, ldb, c, P.n, accumulate);
      } else {
        uk.run(kc, ap, bp, ldb, tile, nr, false);
        for (int r = 0; r < rows; r++)
          for (int q = 0; q < cols; q++) c[r * P.n + q] = (accumulate ? c[r * P.n + q] : T(0)) + tile[r * nr + q];
      }
    }
  }
}

// KC x nr slivers of B stay in L1, an MC x KC block of A in L2, a KC x NC panel of B in L3.
template <class T> struct Blocking;
template <> struct Blocking<double> { static constexpr int64_t MC = 96, KC = 256, NC = 4080; };
template <> struct Blocking<float> { static constexpr int64_t MC = 192, KC = 256, NC = 4080; };

// B is read where it lies, not packed, when it is row-major and A is a single block of rows:
// each value of B is then read by that block only, and packing would copy all of B to read it
// once (a batched convolution: 6 filters times the 25 x 576 windows of each image, whose copy
// took as long as the product). The panel then holds only the last sliver, if partial (zero
// padded). The choice depends on the shapes only; either way the kernel reads the same values.
template <class T>
bool b_direct(const Problem<T>& P, int64_t MC) {
  return !P.tb && P.m <= MC;
}

// Packs the kc x nc panel of B at (p0, j0), its slivers split between the threads; with
// `direct`, only a partial last sliver.
template <class T>
void pack_b_panel(const Problem<T>& P, int64_t j0, int64_t nc, int64_t p0, int64_t kc, int nr, int threads, T* panel,
                  bool direct) {
  const int64_t slivers = (nc + nr - 1) / nr;
  if (direct) {
    pack_b(P, j0, nc, p0, kc, nr, nc / nr, slivers, panel);
    return;
  }
  const int tb = static_cast<int>(std::min<int64_t>(threads, slivers));
  run_tasks(tb, [&](int t) { pack_b(P, j0, nc, p0, kc, nr, slivers * t / tb, slivers * (t + 1) / tb, panel); });
}

// Rows [r0, r1) of C against the packed panel of one (j0, p0) block. The rows are split into one
// contiguous range per thread (a multiple of mr), so the threads get equal work whatever the
// count; each walks its range in blocks of at most MC rows, packing them into its own A block
// (ablocks + t * ab_stride). Few rows: the threads share each packed A block and split the B
// slivers instead.
template <class T>
void block_rows(const MicroKernel<T>& uk, const Problem<T>& P, const T* panel, T* ablocks, int64_t ab_stride, int64_t MC,
                int64_t j0, int64_t nc, int64_t p0, int64_t kc, int64_t r0, int64_t r1, int threads) {
  const int mr = uk.mr, nr = uk.nr;
  const int64_t slivers = (nc + nr - 1) / nr;
  const bool acc = p0 > 0;
  const bool direct = b_direct(P, MC);
  const int64_t rows = r1 - r0;
  const int64_t per = (rows + threads * mr - 1) / (threads * mr) * mr;
  if (threads > 1 && per * (threads - 1) < rows && per >= 2 * mr) {
    run_tasks(threads, [&](int t) {
      T* ab = ablocks + t * ab_stride;
      const int64_t lo = r0 + per * t, hi = std::min(r1, r0 + per * (t + 1));
      for (int64_t i0 = lo; i0 < hi; i0 += MC) {
        const int64_t mc = std::min(MC, hi - i0);
        pack_a(P, i0, mc, p0, kc, mr, ab);
        macro_kernel(uk, P, ab, panel, i0, mc, j0, nc, p0, kc, acc, 0, slivers, direct);
      }
    });
    return;
  }
  for (int64_t i0 = r0; i0 < r1; i0 += MC) {
    const int64_t mc = std::min(MC, r1 - i0);
    pack_a(P, i0, mc, p0, kc, mr, ablocks);
    const int ts = static_cast<int>(std::min<int64_t>(threads, slivers));
    run_tasks(ts, [&](int t) {
      macro_kernel(uk, P, ablocks, panel, i0, mc, j0, nc, p0, kc, acc, slivers * t / ts, slivers * (t + 1) / ts, direct);
    });
  }
}

template <class T>
void gemm_blocked(const MicroKernel<T>& uk, const Problem<T>& P, int threads) {
  const int mr = uk.mr, nr = uk.nr;
  const int64_t MC = Blocking<T>::MC / mr * mr;
  const int64_t KC = Blocking<T>::KC;
  const int64_t NC = Blocking<T>::NC / nr * nr;
  const int64_t nc_max = std::min(NC, (P.n + nr - 1) / nr * nr);
  const int64_t mc_max = std::min(MC, (P.m + mr - 1) / mr * mr);
  const int64_t kc_max = std::min(KC, P.k);
  auto bpanel = scratch<T>(nc_max * kc_max);
  auto ablocks = scratch<T>(mc_max * kc_max * threads);

  for (int64_t j0 = 0; j0 < P.n; j0 += NC) {
    const int64_t nc = std::min(NC, P.n - j0);
    for (int64_t p0 = 0; p0 < P.k; p0 += KC) {
      const int64_t kc = std::min(KC, P.k - p0);
      pack_b_panel(P, j0, nc, p0, kc, nr, threads, bpanel.get(), b_direct(P, MC));
      block_rows(uk, P, bpanel.get(), ablocks.get(), mc_max * kc_max, MC, j0, nc, p0, kc, 0, P.m, threads);
    }
  }
}

// Tiny products: packing costs more than it saves. Accumulates in double, in the reference's
// order, so small float32 products match it exactly.
template <class T>
void gemm_naive(const Problem<T>& P) {
  for (int64_t i = 0; i < P.m; i++)
    for (int64_t j = 0; j < P.n; j++) {
      double acc = 0;
      for (int64_t q = 0; q < P.k; q++) {
        const T av = P.ta ? P.a[q * P.m + i] : P.a[i * P.k + q];
        const T bv = P.tb ? P.b[j * P.k + q] : P.b[q * P.n + j];
        acc += static_cast<double>(av) * static_cast<double>(bv);
      }
      P.c[i * P.n + j] = static_cast<T>(acc);
    }
}

constexpr int64_t kNaiveFlops = 1 << 15;   // m*n*k below which the naive loop wins
constexpr int64_t kThreadFlops = 1 << 18;  // m*n*k above which one product is split over threads

// ---- narrow products -------------------------------------------------------------------------
// n of at most two vectors (a layer's 10 logits, its gradient X^T dZ): the general path would pack
// all of A for a product that reads each value of A once, and fill 10 of a tile's 32 columns.

// The depth summed in registers before C is updated: gemm_blocked's KC, so that a row's rounding
// is that of the general path (partial sums of 256 terms, added in order).
constexpr int64_t kNarrowKC = 256;
// The depth of B packed at once (at most 2 MiB: 16384 x 32 floats), shared by the threads.
constexpr int64_t kNarrowPack = 16384;

// A narrow product reads each value of A once: split over threads, below this many
// multiply-adds it gains less than waking them costs (a 256x784 batch times 784x10, 2M, is
// one thread's).
constexpr int64_t kNarrowThreadFlops = int64_t(1) << 22;

// One run of rows (at most mr; A's run at a, lda apart) against packed depth [q0, q0 + qc), in
// blocks of kNarrowKC.
template <class T>
void narrow_run(const NarrowKernel<T>& nk, const Problem<T>& P, const T* a, int64_t lda, const T* bpack, int64_t q0,
                int64_t qc, T* c, int rows) {
  for (int64_t s = 0; s < qc; s += kNarrowKC) {
    const T* as = P.ta ? a + s * lda : a + s;
    nk.run(std::min(kNarrowKC, qc - s), as, lda, P.ta, bpack + s * nk.width, c, P.n, rows, static_cast<int>(P.n),
           q0 + s > 0);
  }
}

// Rows [r0, r1) against packed depth [q0, q0 + qc): whole runs of mr rows straight from A, the
// last partial run from a zero-padded copy, through the same kernel (so a row's bits do not
// depend on where a split put it).
template <class T>
void narrow_rows(const NarrowKernel<T>& nk, const Problem<T>& P, const T* bpack, int64_t q0, int64_t qc, int64_t r0,
                 int64_t r1) {
  const int mr = nk.mr;
  const int64_t lda = P.ta ? P.m : P.k;
  int64_t i0 = r0;
  for (; i0 + mr <= r1; i0 += mr) {
    const T* a = P.ta ? P.a + q0 * P.m + i0 : P.a + i0 * P.k + q0;
    narrow_run(nk, P, a, lda, bpack, q0, qc, P.c + i0 * P.n, mr);
  }
  if (i0 == r1) return;
  const int rows = static_cast<int>(r1 - i0);
  auto tail = scratch<T>(mr * qc);
  T* t = tail.get();
  if (P.ta) {
    for (int64_t p = 0; p < qc; p++)
      for (int i = 0; i < mr; i++) t[p * mr + i] = i < rows ? P.a[(q0 + p) * P.m + i0 + i] : T(0);
  } else {
    for (int i = 0; i < mr; i++)
      for (int64_t p = 0; p < qc; p++) t[i * qc + p] = i < rows ? P.a[(i0 + i) * P.k + q0 + p] : T(0);
  }
  narrow_run(nk, P, t, P.ta ? mr : qc, bpack, q0, qc, P.c + i0 * P.n, rows);
}

// Rows [r0, r1) of a narrow product (r0 a multiple of mr), split between the threads in runs of mr rows.
template <class T>
void gemm_narrow(const NarrowKernel<T>& nk, const Problem<T>& P, int64_t r0, int64_t r1, int threads) {
  const int64_t mr = nk.mr;
  if (r1 <= r0) return;
  auto bpack = scratch<T>(std::min(kNarrowPack, P.k) * nk.width);
  const int64_t rows = r1 - r0;
  const int64_t per = (rows + threads * mr - 1) / (threads * mr) * mr;
  const int tasks = static_cast<int>((rows + per - 1) / per);
  for (int64_t q0 = 0; q0 < P.k; q0 += kNarrowPack) {
    const int64_t qc = std::min(kNarrowPack, P.k - q0);
    // One sliver `width` wide: kc rows of width values, zero past n.
    pack_b(P, 0, P.n, q0, qc, nk.width, 0, 1, bpack.get());
    run_tasks(tasks, [&](int t) { narrow_rows(nk, P, bpack.get(), q0, qc, r0 + per * t, std::min(r1, r0 + per * (t + 1))); });
  }
}

// About the multiply-adds of one step of a large product (see "steps" below).
constexpr int64_t kStepFlops = int64_t(1) << 28;

// ---- dot products ----------------------------------------------------------------------------
// A small C along a long depth with both operands along it (A m x k, B n x k): a convolution's
// weight gradient sums window values times filters over every position of the batch (25 x 6 over
// 147,456 for LeNet's first layer). Packing for the general or the narrow path then costs more
// than the product, whose tiles would be mostly padding; each value of C is instead a dot
// product of two rows read in place (DotKernel).

// Depth is cut into chunks of this many, whatever the thread count: each chunk's partial C is
// computed alone and the partials are summed in chunk order, so the bits do not depend on how
// many threads ran.
constexpr int64_t kDotChunk = 4096;
// When the dot path is taken: C at most this many values, depth at least this long and 16 times
// C's longer side (for longer sides the general path's packed panels reuse A and B better).
constexpr int64_t kDotMaxC = 4096;
constexpr int64_t kDotMinDepth = 2048;

template <class T>
bool dot_suits(const Problem<T>& P) {
  return !P.ta && P.tb && P.m * P.n <= kDotMaxC && P.k >= kDotMinDepth && P.k >= 16 * std::max(P.m, P.n);
}

template <class T>
void gemm_dot(const DotKernel<T>& dk, const Problem<T>& P, int threads) {
  const int64_t chunks = (P.k + kDotChunk - 1) / kDotChunk;
  const int64_t row_tiles = (P.m + dk.mr - 1) / dk.mr;
  const int64_t mn = P.m * P.n;
  auto part = scratch<T>(chunks * mn);
  auto run = [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; q++) {
      const int64_t ch = q / row_tiles, i0 = (q % row_tiles) * dk.mr;
      const int64_t k0 = ch * kDotChunk, kc = std::min(kDotChunk, P.k - k0);
      const int rows = static_cast<int>(std::min<int64_t>(dk.mr, P.m - i0));
      // Each chunk's block of rows, against every column: the rows stay in cache across them.
      for (int64_t j0 = 0; j0 < P.n; j0 += dk.nr) {
        const int cols = static_cast<int>(std::min<int64_t>(dk.nr, P.n - j0));
        dk.run(kc, P.a + i0 * P.k + k0, P.k, P.b + j0 * P.k + k0, P.k, part.get() + ch * mn + i0 * P.n + j0, P.n,
               rows, cols, false);
      }
    }
  };
  if (threads > 1) parallel_for(chunks * row_tiles, 1, run);
  else run(0, chunks * row_tiles);
  const T* pt = part.get();
  for (int64_t e = 0; e < mn; e++) {
    T s = pt[e];
    for (int64_t ch = 1; ch < chunks; ch++) s += pt[ch * mn + e];
    P.c[e] = s;
  }
}

template <class T>
void gemm_one(const Problem<T>& P, int threads) {
  if (P.m == 0 || P.n == 0) return;
  if (P.k == 0) {
    std::fill(P.c, P.c + P.m * P.n, T(0));
    return;
  }
  const int64_t work = P.m * P.n * P.k;
  if (work <= kNaiveFlops) {
    gemm_naive(P);
    return;
  }
  const MicroKernels ks = kernels_for(static_cast<Level>(g_level.load()));
  // Products large enough to run in steps never come here whole (SteppedGemm), so the path a
  // product takes depends on its shape alone.
  if (dot_suits(P) && work < 2 * kStepFlops) {
    gemm_dot(pick_dot<T>(ks), P, work >= kNarrowThreadFlops ? threads : 1);
    return;
  }
  const NarrowKernel<T> nk = pick_narrow<T>(ks, P.n);
  if (nk.mr > 0) {
    gemm_narrow(nk, P, 0, P.m, work >= kNarrowThreadFlops ? threads : 1);
    return;
  }
  gemm_blocked(pick<T>(ks), P, work >= kThreadFlops ? threads : 1);
}

template <class T>
void gemm_t(const T* a, const T* b, T* c, int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
            int64_t sa, int64_t sb) {
  auto problem = [&](int64_t p) { return Problem<T>{a + p * sa, b + p * sb, c + p * m * n, m, n, k, ta, tb}; };
  const int threads = num_threads();
  const int64_t work = m * n * k;
  if (batch > 1 && threads > 1 && work < kThreadFlops * 8) {
    // Many small products: one task per slice of the batch, each product single-threaded.
    const int tasks = static_cast<int>(std::min<int64_t>(threads, batch));
    run_tasks(tasks, [&](int t) {
      for (int64_t p = batch * t / tasks; p < batch * (t + 1) / tasks; p++) gemm_one(problem(p), 1);
    });
  } else {
    for (int64_t p = 0; p < batch; p++) gemm_one(problem(p), threads);
  }
}

// ---- steps -------------------------------------------------------------------------------
// A large product runs as steps of about kStepFlops multiply-adds, so the stream can serve other
// sessions between them (kernels/stream.h). A step is a run of units; a unit is rows [r0, r1) of
// one (j0, p0) block of gemm_blocked's loops (the columns of a B panel times one depth block), or
// for small products a run of whole products. The units run in gemm_blocked's order, row ranges
// start at multiples of mr and the micro-kernel tiles are the same as the whole call's, so the
// result is the same bit for bit; the cut depends only on the shapes, the thread count and the
// instruction set, never on timing. (kStepFlops, the size of a step, is defined above.)

template <class T>
class SteppedGemm {
 public:
  SteppedGemm(const T* a, const T* b, T* c, int64_t batch, int64_t m, int64_t n, int64_t k, bool ta, bool tb,
              int64_t sa, int64_t sb)
      : a_(a), b_(b), c_(c), batch_(batch), m_(m), n_(n), k_(k), ta_(ta), tb_(tb), sa_(sa), sb_(sb),
        threads_(num_threads()), uk_(pick<T>(kernels_for(static_cast<Level>(g_level.load())))) {
    const int64_t work = m * n * k;
    small_batch_ = batch > 1 && threads_ > 1 && work < kThreadFlops * 8;
    blocked_ = !small_batch_ && work > kNaiveFlops && m > 0 && n > 0 && k > 0 && work >= 2 * kStepFlops;
    nk_ = pick_narrow<T>(kernels_for(static_cast<Level>(g_level.load())), n);
    if (blocked_ && nk_.mr > 0) {
      // Runs of rows, as gemm_one's narrow path would cut them only between threads.
      const int64_t align = static_cast<int64_t>(nk_.mr) * threads_;
      const int64_t want = std::max<int64_t>(1, kStepFlops / std::max<int64_t>(1, n * k));
      narrow_rows_ = std::max(align, (want + align - 1) / align * align);
      narrow_chunks_ = (m + narrow_rows_ - 1) / narrow_rows_;
      steps_ = batch * narrow_chunks_;
      return;
    }
    nk_ = {};
    if (!blocked_) {
      // Whole products, as many to a step as make about kStepFlops.
      per_step_ = std::max<int64_t>(1, kStepFlops / std::max<int64_t>(work, 1));
      steps_ = (batch + per_step_ - 1) / per_step_;
      return;
    }
    const int mr = uk_.mr, nr = uk_.nr;
    MC_ = Blocking<T>::MC / mr * mr;
    KC_ = Blocking<T>::KC;
    NC_ = Blocking<T>::NC / nr * nr;
    nj_ = (n + NC_ - 1) / NC_;
    np_ = (k + KC_ - 1) / KC_;
    // Units of one product, grouped into steps of at least kStepFlops (the last may be smaller).
    int64_t acc = 0;
    bool open = false;
    for (int64_t j = 0; j < nj_; j++) {
      const int64_t nc = std::min(NC_, n - j * NC_);
      const int64_t rows = chunk_rows(nc);
      const int64_t chunks = (m + rows - 1) / rows;
      for (int64_t p = 0; p < np_; p++) {
        const int64_t kc = std::min(KC_, k - p * KC_);
        for (int64_t ch = 0; ch < chunks; ch++) {
          if (!open) {
            starts_.push_back({j, p, ch});
            open = true;
          }
          acc += std::min(rows, m - ch * rows) * nc * kc;
          if (acc >= kStepFlops) {
            acc = 0;
            open = false;
          }
        }
      }
    }
    steps_ = batch * static_cast<int64_t>(starts_.size());
  }

  int64_t steps() const { return steps_; }

  void step(int64_t s) {
    if (s < 0 || s >= steps_) fail("gemm: step out of range");
    if (nk_.mr > 0) {
      const int64_t r0 = (s % narrow_chunks_) * narrow_rows_;
      gemm_narrow(nk_, problem(s / narrow_chunks_), r0, std::min(m_, r0 + narrow_rows_), threads_);
      return;
    }
    if (!blocked_) {
      const int64_t lo = s * per_step_, hi = std::min(batch_, lo + per_step_);
      if (small_batch_) {
        const int tasks = static_cast<int>(std::min<int64_t>(threads_, hi - lo));
        run_tasks(tasks, [&](int t) {
          for (int64_t p = lo + (hi - lo) * t / tasks; p < lo + (hi - lo) * (t + 1) / tasks; p++) gemm_one(problem(p), 1);
        });
      } else {
        for (int64_t p = lo; p < hi; p++) gemm_one(problem(p), threads_);
      }
      return;
    }
    const int64_t per = static_cast<int64_t>(starts_.size());
    const int64_t prod = s / per, local = s % per;
    const Problem<T> P = problem(prod);
    if (!bpanel_) {
      const int64_t nc_max = std::min(NC_, (n_ + uk_.nr - 1) / uk_.nr * uk_.nr);
      mc_max_ = std::min(MC_, (m_ + uk_.mr - 1) / uk_.mr * uk_.mr);
      kc_max_ = std::min(KC_, k_);
      bpanel_ = std::make_unique<Scratch>(scratch<T>(nc_max * kc_max_));
      ablocks_ = std::make_unique<Scratch>(scratch<T>(mc_max_ * kc_max_ * threads_));
    }
    Unit u = starts_[local];
    const bool last = local + 1 == per;
    const Unit end = last ? Unit{nj_, 0, 0} : starts_[local + 1];
    while (!(u.j == end.j && u.p == end.p && u.ch == end.ch)) {
      const int64_t j0 = u.j * NC_, nc = std::min(NC_, n_ - j0);
      const int64_t p0 = u.p * KC_, kc = std::min(KC_, k_ - p0);
      const int64_t rows = chunk_rows(nc);
      const int64_t chunks = (m_ + rows - 1) / rows;
      const int64_t key = (prod * nj_ + u.j) * np_ + u.p;
      if (packed_ != key) {
        pack_panel(P, j0, nc, p0, kc);
        packed_ = key;
      }
      const int64_t r0 = u.ch * rows, r1 = std::min(m_, r0 + rows);
      run_rows(P, j0, nc, p0, kc, r0, r1);
      // The next unit in gemm_blocked's order: chunks, then depth blocks, then column blocks.
      if (++u.ch == chunks) {
        u.ch = 0;
        if (++u.p == np_) {
          u.p = 0;
          u.j++;
        }
      }
    }
    // The product's last step: its scratch goes now, not when the queued call is dropped.
    if (last && prod + 1 == batch_) {
      bpanel_.reset();
      ablocks_.reset();
    }
  }

 private:
  using Scratch = std::unique_ptr<T[], ScratchDeleter>;
  struct Unit {
    int64_t j, p, ch;
  };

  Problem<T> problem(int64_t p) const { return Problem<T>{a_ + p * sa_, b_ + p * sb_, c_ + p * m_ * n_, m_, n_, k_, ta_, tb_}; }

  // Rows of a unit of a block nc wide: about kStepFlops over KC deep, a multiple of mr per thread.
  int64_t chunk_rows(int64_t nc) const {
    const int64_t align = static_cast<int64_t>(uk_.mr) * threads_;
    const int64_t want = std::max<int64_t>(1, kStepFlops / std::max<int64_t>(1, nc * KC_));
    return std::max(align, (want + align - 1) / align * align);
  }

  void pack_panel(const Problem<T>& P, int64_t j0, int64_t nc, int64_t p0, int64_t kc) {
    pack_b_panel(P, j0, nc, p0, kc, uk_.nr, threads_, bpanel_->get(), b_direct(P, MC_));
  }

  // gemm_blocked's work for rows [r0, r1) of one (j0, p0) block, split between the threads the
  // same way.
  void run_rows(const Problem<T>& P, int64_t j0, int64_t nc, int64_t p0, int64_t kc, int64_t r0, int64_t r1) {
    block_rows(uk_, P, bpanel_->get(), ablocks_->get(), mc_max_ * kc_max_, MC_, j0, nc, p0, kc, r0, r1, threads_);
  }

  const T* a_;
  const T* b_;
  T* c_;
  int64_t batch_, m_, n_, k_;
  bool ta_, tb_;
  int64_t sa_, sb_;
  int threads_;
  MicroKernel<T> uk_;
  NarrowKernel<T> nk_;
  int64_t narrow_rows_ = 0, narrow_chunks_ = 0;
  bool small_batch_ = false, blocked_ = false;
  int64_t per_step_ = 1, steps_ = 0;
  int64_t MC_ = 0, KC_ = 0, NC_ = 0, nj_ = 0, np_ = 0, mc_max_ = 0, kc_max_ = 0;
  std::vector<Unit> starts_;
  int64_t packed_ = -1;
  std::unique_ptr<Scratch> bpanel_, ablocks_;
};

}  // namespace

Work gemm(const Buf& a_, const Buf& b_, const Buf& out_, int64_t batch, int64_t m, int64_t n, int64_t k,
          bool trans_a, bool trans_b, int64_t stride_a, int64_t stride_b) {
  const Buf a = a_, b = b_, out = out_;
  same_dtype(a, out, "gemm");
  same_dtype(b, out, "gemm");
  needs_float(out, "gemm");
  if (batch < 0 || m < 0 || n < 0 || k < 0) fail("gemm: negative dimension");
  if (stride_a < 0 || stride_b < 0) fail("gemm: negative batch stride");
  using I = __int128;
  if (I(batch) * m * n != out.length) fail("gemm: out length does not match batch * m * n");
  if (batch > 0 && (I(batch - 1) * stride_a + I(m) * k > a.length || I(batch - 1) * stride_b + I(k) * n > b.length))
    fail("gemm: operand out of bounds");
  if (I(m) * n * k > I(kMaxIndex)) fail("gemm: problem too large");
  if (out.length == 0) return {};
  // About 16 multiply-adds per simple element operation once vectorized and blocked.
  const double cost = double(batch) * double(m) * double(n) * double(k) / 16 + double(out.length);
  // Large products come in steps, unless the output aliases an operand (rare: it goes through a
  // copy, written at the end, which one step at a time would have to keep).
  const bool alias = out.data == a.data || out.data == b.data;
  if (!alias && double(batch) * double(m) * double(n) * double(k) >= 2.0 * double(kStepFlops)) {
    Work w;
    w.cost = cost;
    with_dtype(out.dtype, [&](auto t) {
      using T = decltype(t);
      auto g = std::make_shared<SteppedGemm<T>>(a.as<T>(), b.as<T>(), out.as<T>(), batch, m, n, k, trans_a, trans_b, stride_a, stride_b);
      w.steps = g->steps();
      w.step = [g](int64_t s) { g->step(s); };
      w.run = [g] {
        for (int64_t s = 0; s < g->steps(); s++) g->step(s);
      };
    });
    if (w.steps > 1) return w;
  }
  return {[=] {
            with_dtype(out.dtype, [&](auto t) {
              using T = decltype(t);
              T* c = out.as<T>();
              // The output must not alias an operand that packing still reads: go through a copy.
              const bool alias = out.data == a.data || out.data == b.data;
              std::unique_ptr<T[], ScratchDeleter> tmp;
              if (alias) {
                tmp = scratch<T>(out.length);
                c = tmp.get();
              }
              gemm_t<T>(a.as<T>(), b.as<T>(), c, batch, m, n, k, trans_a, trans_b, stride_a, stride_b);
              if (alias) std::memcpy(out.data, c, static_cast<size_t>(out.length) * sizeof(T));
            });
          },
          cost};
}

const char* simd_level() { return kLevelNames[g_level.load()]; }
bool simd_at_least_avx2() { return g_level.load(std::memory_order_relaxed) >= kAvx2; }
bool simd_at_least_avx512() { return g_level.load(std::memory_order_relaxed) >= kAvx512; }

const char* set_simd_cap(const char* level) {
  int want = -1;
  for (int l = 0; l <= kAvx512; l++)
    if (std::strcmp(level, kLevelNames[l]) == 0) want = l;
  if (want < 0) fail(std::string("unknown SIMD level ") + level);
  g_level.store(std::min<int>(want, g_hw));
  return simd_level();
}

}  // namespace gs
