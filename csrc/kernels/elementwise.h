// Kernel stubs of the elementwise family (ops/binary.cpp, unary.cpp, compare.cpp, copy.cpp).
// Every tensor argument is on the device the stub is called for; outputs are allocated by the op.
#pragma once
#include "core/dispatch.h"
#include "core/tensor.h"
#include "kernels/op_kinds.h"

namespace cgad {

// out = a op b with broadcasting; a, b and out have out's dtype.
CGAD_DECLARE_KERNEL(binary_kernel, void(const Tensor& out, const Tensor& a, const Tensor& b, BinOp op));
// out = op(a); a has out's dtype.
CGAD_DECLARE_KERNEL(unary_kernel, void(const Tensor& out, const Tensor& a, UnOp op));
// out (bool) = a op b with broadcasting; a and b share one dtype.
CGAD_DECLARE_KERNEL(compare_kernel, void(const Tensor& out, const Tensor& a, const Tensor& b, CompareOp op));
// out = cond ? a : out, cond and a broadcast to out's shape, a of out's dtype.
CGAD_DECLARE_KERNEL(where_kernel, void(const Tensor& out, const Tensor& cond, const Tensor& a));
// a += b in place (b broadcast to a's shape, of a's dtype).
CGAD_DECLARE_KERNEL(add_inplace_kernel, void(const Tensor& a, const Tensor& b));
// a *= s in place (floating a).
CGAD_DECLARE_KERNEL(mul_scalar_inplace_kernel, void(const Tensor& a, double s));
// Every element of t (any strides) set to value, converted to t's dtype.
CGAD_DECLARE_KERNEL(fill_kernel, void(const Tensor& t, double value));
// dst[i] = convert(src[i]), src broadcast to dst's shape, both on one device.
CGAD_DECLARE_KERNEL(copy_kernel, void(const Tensor& dst, const Tensor& src));
// Between a device and the CPU: contiguous tensors of one dtype and shape. copy_from_cpu is
// looked up on dst's device, copy_to_cpu on src's.
CGAD_DECLARE_KERNEL(copy_from_cpu_kernel, void(const Tensor& dst, const Tensor& src));
CGAD_DECLARE_KERNEL(copy_to_cpu_kernel, void(const Tensor& dst, const Tensor& src));

}  // namespace cgad
