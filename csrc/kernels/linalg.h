// Kernel stubs of matmul and linear (ops/matmul.cpp). Matrix operands are in BLAS form: a matrix
// is the last two dims of a tensor, its last dim of unit stride (or of size <= 1) and its row
// stride (dim -2) the leading dimension; a transpose flag says the kernel uses its transpose.
// The op makes any other layout contiguous first, so every backend sees only these two forms.
// In a non-empty product (M, N, K > 0) each leading dim is at least 1 and the row length, as BLAS asks.
#pragma once
#include "core/dispatch.h"
#include "core/tensor.h"

namespace cgad {

// For every batch index (c's leading dims; a and b have the same, any strides, 0 where
// broadcast): c (M, N) = alpha * op(a) @ op(b) + beta * c, op(x) = trans ? x^T : x, so a is
// (M, K) or, transposed, (K, M). With beta = 0 c is only written. All three of one floating dtype.
CGAD_DECLARE_KERNEL(gemm_kernel, void(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                                      double alpha, double beta));
// out (rows, out_f) = x (rows, in) @ w (out_f, in)^T + b, b (out_f) added to every row or, when
// undefined, nothing added. All contiguous, of one floating dtype.
CGAD_DECLARE_KERNEL(linear_kernel, void(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b));
// The name of the bfloat16 GEMM the device runs (the CPU: "avx512_bf16" or "fallback").
CGAD_DECLARE_KERNEL(bf16_gemm_name_kernel, const char*());

}  // namespace cgad
