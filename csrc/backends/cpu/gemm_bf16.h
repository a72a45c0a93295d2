// The bfloat16 GEMM: bf16 operands, float32 accumulation, float32 or bf16 output.
//
//   C (M, N) = alpha * op(A) @ op(B) + beta * C + bias  (bias (N) added to every row, or none)
//
// row-major as gemm.h, op(X) = trans ? X^T : X. A bf16 C is rounded once, to nearest even, after
// the epilogue. Three implementations give the same results up to float32 summation order,
// chosen at run time from the CPU's features: AMX tiles (gemm_bf16_amx.cpp) where the CPU has
// AMX-BF16, AVX512_BF16 (`vdpbf16ps`, gemm_bf16_avx512.cpp) where it has that, and a
// float32-arithmetic path (the operands widened to float32, OpenBLAS's sgemm) for the others.
// CGAD_BF16_GEMM=fallback or =avx512 in the environment forces one (docs/performance.md).
#pragma once
#include <cstdint>
#include "core/dtype.h"

namespace cgad::cpu {

template <typename TC>
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias);

// The same product on the calling thread only, for kernels that already run one problem per
// thread (the bf16 attention's per-head products). Same implementation choice as gemm_bf16.
template <typename TC>
void gemm_bf16_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                      int64_t lda, const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc);

// Which implementation gemm_bf16 runs: "amx_bf16", "avx512_bf16" or "fallback".
const char* gemm_bf16_impl();

namespace detail {
// The AMX kernel (gemm_bf16_amx.cpp): whether this CPU has AMX-BF16 and the OS granted the tile
// state to the process, and the kernel (only called where it is usable), with K > 0.
bool amx_bf16_usable();
template <typename TC>
void gemm_bf16_amx(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                   int64_t lda, const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias,
                   int nthreads);
// The AVX512_BF16 kernel (only called where the CPU has it), with K > 0.
template <typename TC>
void gemm_bf16_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                      int64_t lda, const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias,
                      int nthreads);
// The float32-arithmetic path, whatever the CPU has (tests compare the two).
template <typename TC>
void gemm_bf16_fallback(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A,
                        int64_t lda, const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias);
}  // namespace detail

}  // namespace cgad::cpu
