#include "backends/cpu/gemm.h"
#include <climits>
#include "backends/cpu/parallel.h"
#include "core/error.h"
#ifdef CGAD_HAVE_BLAS
#include <cblas.h>
#endif

namespace cgad::cpu {

namespace {

// Multiply-adds below which a GEMM stays on one thread.
constexpr int64_t kGemmGrain = int64_t(1) << 18;

void check_blas_int(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  for (int64_t v : {M, N, K, lda, ldb, ldc})
    if (v > INT_MAX) throw ValueError(str("matmul: dimension ", v, " exceeds the 32-bit BLAS limit"));
}

template <typename T>
void gemm_naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T s = 0;
      for (int64_t k = 0; k < K; ++k) s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = alpha * s + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
  }
}

}  // namespace

template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // BLAS leaves C untouched for K = 0 only when beta = 1; define it as beta * C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
#ifdef CGAD_HAVE_BLAS
  check_blas_int(M, N, K, lda, ldb, ldc);
  const auto opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
  auto blas = [&](int64_t m, int64_t n, const T* a, const T* b, T* c) {
    if constexpr (std::is_same_v<T, float>)
      scipy_cblas_sgemm(CblasRowMajor, opa, opb, int(m), int(n), int(K), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
    else
      scipy_cblas_dgemm(CblasRowMajor, opa, opb, int(m), int(n), int(K), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
  };
  // OpenBLAS runs single-threaded in each of our OpenMP threads, on its own block of C: one
  // thread pool in the process instead of two that spin against each other, and no OpenBLAS
  // synchronization inside the call. Rows split when C is tall, columns when it is wide.
  static const bool blas_single = (scipy_openblas_set_num_threads(1), true);
  (void)blas_single;
  const bool split_rows = M >= N;
  const int64_t extent = split_rows ? M : N;
  const int nt = int(std::min<int64_t>(M * N * K >= kGemmGrain ? get_num_threads() : 1, (extent + 15) / 16));
  if (nt <= 1) {
    blas(M, N, A, B, C);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int t = 0; t < nt; ++t) {
    const int64_t b = extent * t / nt / 16 * 16, e = t + 1 == nt ? extent : extent * (t + 1) / nt / 16 * 16;
    if (e <= b) continue;
    if (split_rows)
      blas(e - b, N, ta ? A + b : A + b * lda, B, C + b * ldc);
    else
      blas(M, e - b, A, tb ? B + b * ldb : B + b, C + b);
  }
#else
  gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);

}  // namespace cgad::cpu
