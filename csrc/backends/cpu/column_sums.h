// Column sums of a row-major (rows, cols) matrix: bias gradients and sums over leading dims.
// Each column accumulates in Acc precision in row order whatever the thread count: threads
// split the columns, and the inner loop runs across columns (SIMD), so no transposed copy.
#pragma once
#include <algorithm>
#include <cstdint>
#include "backends/cpu/parallel.h"
#include "backends/cpu/simd_loop.h"

namespace cgad::cpu {

template <typename T, typename Acc = double>
void column_sums(const T* x, T* sums, int64_t rows, int64_t cols) {
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (cols + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * cols))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kBlock, n = std::min(kBlock, cols - j0);
    Acc acc[kBlock] = {};
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * cols + j0;
      simd_loop<T>(0, n, [&](int64_t j) { acc[j] += Acc(xr[j]); });
    }
    for (int64_t j = 0; j < n; ++j) sums[j0 + j] = T(acc[j]);
  }
}

}  // namespace cgad::cpu
