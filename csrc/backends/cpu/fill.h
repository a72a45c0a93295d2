// Fill and strided copy with dtype conversion (used by contiguous(), .to(dtype), cat, ...).
#pragma once
#include "core/tensor.h"

namespace cgad::cpu {
void fill(const Tensor& t, double value);
// dst[i] = convert(src[i]); src is broadcast to dst's shape. Shapes must be broadcastable.
void copy(const Tensor& dst, const Tensor& src);
}  // namespace cgad::cpu
