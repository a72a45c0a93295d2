// C = alpha * op(A) @ op(B) + beta * C, row-major, through OpenBLAS (or a plain loop when
// built with CGAD_BLAS=OFF).
#pragma once
#include <cstdint>

namespace cgad::cpu {
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
}  // namespace cgad::cpu
