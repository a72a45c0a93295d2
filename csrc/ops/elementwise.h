// Shared helpers of the elementwise ops.
#pragma once
#include "ops/ops.h"

namespace cgad {

// The grad of a broadcast input: summed back to its shape and cast to its dtype.
inline Tensor reduce_grad(const Tensor& g, const Shape& shape, DType dtype) {
  return cast(sum_to(g, shape), dtype);
}

}  // namespace cgad
