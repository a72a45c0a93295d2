// Shared helpers of the fused nn ops: argument checks and the row-parallel loop they all use.
#pragma once
#include "autograd/node.h"
#include "backends/cpu/parallel.h"
#include "ops/ops.h"

namespace cgad {

inline void check_floating(const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) throw ValueError(str(op, ": ", what, " is missing"));
  if (t.dtype() != DType::Float32 && t.dtype() != DType::Float64)
    throw TypeError(str(op, ": expected ", what, " to be float32 or float64, got ", dtype_name(t.dtype())));
}

inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype())
    throw TypeError(str(op, ": expected tensors of one dtype, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype())));
}

// Runs f(r) for r in [0, rows) on a static OpenMP schedule; `work` is the total element count,
// so small problems stay on one thread. Each row is independent, so results do not depend on
// the thread count.
template <typename F>
void parallel_rows(int64_t rows, int64_t work, F&& f) {
  const int nt = threads_for(work);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t r = 0; r < rows; ++r) f(r);
}

}  // namespace cgad
