// A single-threaded, register-blocked GEMM for the small products inside fused ops (attention's
// per-head blocks), where calling BLAS from every OpenMP thread would start its own thread pool.
//
//   C (M, N) = sum over k in [0, K) of A(i, k) * B[k * ldb + j]
//
// A is read through two strides (so a transposed operand costs nothing: A(i, k) =
// A[i * ars + k * acs]); B's rows are contiguous; C is row-major and overwritten. A tile of
// MR x NR accumulators stays in registers across the whole k loop, so each B row loaded is
// used MR times. The summation order over k is fixed, so results do not depend on threads.
#pragma once
#include <algorithm>
#include <cstdint>

namespace cgad::cpu {

namespace micro {

constexpr int MR = 6;   // rows of C per tile
constexpr int NR = 32;  // columns of C per tile: two 512-bit registers of floats

// One MR x NR tile of C. Full tiles know their bounds at compile time, so the loops unroll and
// the accumulators stay in registers; edge tiles (fewer rows or columns) run the same code with
// runtime bounds, in the same order of summation.
template <typename T, bool Full>
inline void tile(int64_t K, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C, int64_t ldc,
                 int rows, int cols) {
  const int nr = Full ? MR : rows, nc = Full ? NR : cols;
  T acc[MR][NR] = {};
  for (int64_t k = 0; k < K; ++k) {
    const T* b = B + k * ldb;
    for (int r = 0; r < nr; ++r) {
      const T a = A[r * ars + k * acs];
#pragma omp simd
      for (int j = 0; j < nc; ++j) acc[r][j] += a * b[j];
    }
  }
  for (int r = 0; r < nr; ++r)
    for (int j = 0; j < nc; ++j) C[r * ldc + j] = acc[r][j];
}

}  // namespace micro

// C = A @ B over rows [0, M) and columns [0, N). k_range(i0) -> (k_begin, k_end) gives the k
// range of the row panel starting at i0 (causal attention skips keys a panel cannot see);
// n_limit(i0) bounds the columns computed for that panel (the rest of the panel is left
// untouched, for the caller to mask).
template <typename T, typename KRange, typename NLimit>
void micro_gemm(int64_t M, int64_t N, const T* A, int64_t ars, int64_t acs, const T* B, int64_t ldb, T* C,
                int64_t ldc, KRange k_range, NLimit n_limit) {
  using namespace micro;
  for (int64_t i0 = 0; i0 < M; i0 += MR) {
    const int rows = int(std::min<int64_t>(MR, M - i0));
    const auto [k0, k1] = k_range(i0);
    const int64_t K = std::max<int64_t>(k1 - k0, 0);
    const int64_t n = std::min<int64_t>(N, n_limit(i0));
    const T* Ai = A + i0 * ars + k0 * acs;
    const T* Bk = B + k0 * ldb;
    T* Ci = C + i0 * ldc;
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
      const int cols = int(std::min<int64_t>(NR, n - j0));
      if (rows == MR && cols == NR)
        tile<T, true>(K, Ai, ars, acs, Bk + j0, ldb, Ci + j0, ldc, rows, cols);
      else
        tile<T, false>(K, Ai, ars, acs, Bk + j0, ldb, Ci + j0, ldc, rows, cols);
    }
  }
}

}  // namespace cgad::cpu
