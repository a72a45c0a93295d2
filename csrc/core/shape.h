// Device-independent shape math shared by ops and kernels: broadcasting.
#pragma once
#include "core/tensor.h"

namespace cgad {

// Strides of t broadcast to `shape` (0 along broadcast dims); t's dims align to the right.
Shape broadcast_strides(const Tensor& t, const Shape& shape);
// The broadcast of two shapes, or a ValueError naming the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace cgad
