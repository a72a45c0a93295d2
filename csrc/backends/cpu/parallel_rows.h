// The row-parallel loop of the fused nn kernels (layer_norm, softmax, gelu, cross_entropy,
// embedding, dropout).
#pragma once
#include <cstdint>
#include "backends/cpu/parallel.h"

namespace cgad::cpu {

// Runs f(r) for r in [0, rows) on a static OpenMP schedule; `work` is the total element count,
// so small problems stay on one thread. Each row is independent, so results do not depend on
// the thread count.
template <typename F>
void parallel_rows(int64_t rows, int64_t work, F&& f) {
  const int nt = threads_for(work);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t r = 0; r < rows; ++r) f(r);
}

}  // namespace cgad::cpu
