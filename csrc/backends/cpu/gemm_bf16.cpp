// The bf16 GEMM's dispatcher (AVX512_BF16 kernel or the float32-arithmetic fallback) and the
// fallback itself: correct on any x86-64 CPU, not fast (it widens both operands to float32).
#include "backends/cpu/gemm_bf16.h"
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "backends/cpu/gemm.h"
#include "backends/cpu/parallel.h"

namespace cgad::cpu {

namespace {

// Multiply-adds below which the GEMM stays on one thread.
constexpr int64_t kGemmGrain = int64_t(1) << 18;

enum class Impl { Amx, Avx512, Fallback };

Impl choose_impl() {
  const char* env = std::getenv("CGAD_BF16_GEMM");
  if (env && std::strcmp(env, "fallback") == 0) return Impl::Fallback;
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's check includes the OS saving the 512-bit register state (XGETBV).
  const bool avx512 = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
  if (!(env && std::strcmp(env, "avx512") == 0) && avx512 && detail::amx_bf16_usable()) return Impl::Amx;
  if (avx512) return Impl::Avx512;
#endif
  return Impl::Fallback;
}

Impl impl() {
  static const Impl chosen = choose_impl();
  return chosen;
}

// float32 copy of the stored (rows, cols) matrix X with leading dim ld, packed to ld = cols.
std::vector<float> widen(const bf16* X, int64_t rows, int64_t cols, int64_t ld) {
  std::vector<float> out(size_t(rows * cols));
#pragma omp parallel for schedule(static) num_threads(threads_for(rows * cols))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[size_t(r * cols + c)] = float(X[r * ld + c]);
  return out;
}

}  // namespace

namespace detail {

template <typename TC>
void gemm_bf16_fallback(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                        const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias) {
  // Products of bf16 values are exact in float32, so this differs from the fast path only in
  // the order of the float32 sums.
  const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  std::vector<float> a = widen(A, ar, ac, lda), b = widen(B, br, bc, ldb), c(size_t(M * N));
  gemm<float>(ta, tb, M, N, K, 1.0f, a.data(), std::max<int64_t>(ac, 1), b.data(), std::max<int64_t>(bc, 1), 0.0f,
              c.data(), N);
#pragma omp parallel for schedule(static) num_threads(threads_for(M * N))
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float v = alpha * c[size_t(i * N + j)];
      if (beta != 0.0f) v += beta * float(C[i * ldc + j]);
      if (bias) v += float(bias[j]);
      C[i * ldc + j] = TC(v);
    }
}

template void gemm_bf16_fallback<float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t,
                                        const bf16*, int64_t, float, float*, int64_t, const bf16*);
template void gemm_bf16_fallback<bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t,
                                       const bf16*, int64_t, float, bf16*, int64_t, const bf16*);

}  // namespace detail

const char* gemm_bf16_impl() {
  switch (impl()) {
    case Impl::Amx: return "amx_bf16";
    case Impl::Avx512: return "avx512_bf16";
    case Impl::Fallback: break;
  }
  return "fallback";
}

template <typename TC>
void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
               const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias) {
  if (M == 0 || N == 0) return;
  const Impl which = impl();
  if (K > 0 && which != Impl::Fallback) {
    const int nt = M * N * K >= kGemmGrain ? get_num_threads() : 1;
    if (which == Impl::Amx) detail::gemm_bf16_amx<TC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, nt);
    else detail::gemm_bf16_avx512<TC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, nt);
    return;
  }
  detail::gemm_bf16_fallback<TC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
}

template <typename TC>
void gemm_bf16_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                      const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const Impl which = impl();
  if (K > 0 && which != Impl::Fallback) {
    if (which == Impl::Amx) detail::gemm_bf16_amx<TC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, 1);
    else detail::gemm_bf16_avx512<TC>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, 1);
    return;
  }
  // float32 arithmetic on this thread: exact products, float32 sums (as the fallback above)
  std::vector<float> row(static_cast<size_t>(N));
  for (int64_t i = 0; i < M; ++i) {
    std::fill(row.begin(), row.end(), 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float a = float(ta ? A[k * lda + i] : A[i * lda + k]);
      if (tb) {
        for (int64_t j = 0; j < N; ++j) row[size_t(j)] += a * float(B[j * ldb + k]);
      } else {
        const bf16* b = B + k * ldb;
        for (int64_t j = 0; j < N; ++j) row[size_t(j)] += a * float(b[j]);
      }
    }
    for (int64_t j = 0; j < N; ++j) {
      float v = alpha * row[size_t(j)];
      if (beta != 0.0f) v += beta * float(C[i * ldc + j]);
      C[i * ldc + j] = TC(v);
    }
  }
}

template void gemm_bf16_serial<float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                      int64_t, float, float*, int64_t);
template void gemm_bf16_serial<bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                     int64_t, float, bf16*, int64_t);

template void gemm_bf16<float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                               int64_t, float, float*, int64_t, const bf16*);
template void gemm_bf16<bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                              int64_t, float, bf16*, int64_t, const bf16*);

}  // namespace cgad::cpu
