// The CUDA backend's GEMM: row-major products (kernels/linalg.h's BLAS form) through cuBLASLt,
// shared by the matmul and linear kernels and by attention's batched products.
//
// cuBLASLt is column-major. A row-major (R, C) matrix with leading dim ld is, read column-major,
// its (C, R) transpose with the same ld, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T:
// cuBLASLt's A is our b, its B our a, and its (m, n) our (N, M); no data moves.
#pragma once
#include <cstdint>
#include "core/dtype.h"
#include "core/tensor.h"

namespace cgad::cuda {

// c (M, N) = alpha * op(a) @ op(b) + beta * c [+ bias], for `batch` matrices `stride_*` elements
// apart (a stride may be 0: that operand is shared by the batch). a and b are of `dtype`
// (float32, float64, or bfloat16 with float32 accumulation), c of `c_dtype`: the same, or float32
// for bfloat16 operands (attention's scores), rounded once. bias (N,), of c's dtype, is added to
// every row by cuBLASLt's epilogue. beta = 0 only writes c.
struct GemmArgs {
  DType dtype = DType::Float32;
  DType c_dtype = DType::Float32;
  int64_t M = 0, N = 0, K = 0, batch = 1;
  const void* a = nullptr;
  bool trans_a = false;
  int64_t lda = 0, stride_a = 0;
  const void* b = nullptr;
  bool trans_b = false;
  int64_t ldb = 0, stride_b = 0;
  void* c = nullptr;
  int64_t ldc = 0, stride_c = 0;
  double alpha = 1, beta = 0;
  const void* bias = nullptr;
};

// Runs the GEMM on `device`'s stream. K = 0 is c = beta * c (+ bias), as the CPU defines it.
// Returns false, having enqueued nothing, when cuBLASLt has no algorithm for it (the caller may
// then fall back, e.g. from the bias epilogue to a bias-seeded c); other failures throw.
bool try_gemm(int device, const GemmArgs& g);
// As try_gemm, but having no algorithm is a RuntimeError naming the problem.
void gemm(int device, const GemmArgs& g);

// c = alpha * op(a) @ op(b) + beta * c over c's batch dims (a's and b's broadcast, with any
// strides), the contract of gemm_kernel (c may also be float32 for bfloat16 a and b): batch dims
// that fold into one stride become one strided-batched call, the others a loop of calls.
void gemm_tensors(const Tensor& c, const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, double alpha,
                  double beta);

}  // namespace cgad::cuda
