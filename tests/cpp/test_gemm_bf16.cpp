// The bf16 GEMM (backends/cpu/gemm_bf16.h) against a float64 reference of the same bf16 inputs,
// and its AVX512_BF16 kernel against the float32-arithmetic fallback: every transpose, odd
// shapes, K not a multiple of a k pair or of the k block, single rows and columns, the bias
// epilogue, alpha and beta, float32 and bf16 output.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>
#include "backends/cpu/gemm_bf16.h"
#include "check.h"

using namespace cgad;

namespace {

std::vector<bf16> random_bf16(int64_t n, std::mt19937& g) {
  std::normal_distribution<float> d;
  std::vector<bf16> v(static_cast<size_t>(n));
  for (auto& x : v) x = bf16(d(g));
  return v;
}

// max|a - b| / max|b|
template <typename TA>
double normalized_error(const std::vector<TA>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(float(a[i])) - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return den > 0 ? num / den : num;
}

struct Case {
  int64_t M, N, K;
};

template <typename TC>
void run_case(const Case& c, bool ta, bool tb, bool with_bias, float alpha, float beta, std::mt19937& g) {
  const int64_t M = c.M, N = c.N, K = c.K;
  const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;  // leading dims past the row
  std::vector<bf16> A = random_bf16((ta ? K : M) * lda, g), B = random_bf16((tb ? N : K) * ldb, g);
  std::vector<bf16> bias = random_bf16(N, g);
  std::vector<bf16> c0 = random_bf16(M * ldc, g);
  std::vector<TC> C_fast(size_t(M * ldc)), C_ref(size_t(M * ldc));
  for (size_t i = 0; i < c0.size(); ++i) C_fast[i] = C_ref[i] = TC(float(c0[i]));
  std::vector<double> ref(size_t(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += double(float(ta ? A[k * lda + i] : A[i * lda + k])) * double(float(tb ? B[j * ldb + k] : B[k * ldb + j]));
      ref[size_t(i * N + j)] = alpha * s + beta * double(float(c0[i * ldc + j])) + (with_bias ? double(float(bias[j])) : 0.0);
    }
  const bf16* pb = with_bias ? bias.data() : nullptr;
  cpu::gemm_bf16<TC>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C_fast.data(), ldc, pb);
  cpu::detail::gemm_bf16_fallback<TC>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C_ref.data(), ldc, pb);
  std::vector<TC> fast(size_t(M * N)), slow(size_t(M * N));
  std::vector<double> slow_d(size_t(M * N));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      fast[size_t(i * N + j)] = C_fast[size_t(i * ldc + j)];
      slow[size_t(i * N + j)] = C_ref[size_t(i * ldc + j)];
      slow_d[size_t(i * N + j)] = double(float(C_ref[size_t(i * ldc + j)]));
    }
  // float32 sums of K products of bf16 values (exact in float32): within K * 2^-24 relative;
  // a bf16 output adds its rounding, 2^-9 relative.
  const double acc_tol = 4e-7 * std::sqrt(double(K) + 1) + 1e-6;
  const double tol = std::is_same_v<TC, float> ? acc_tol : acc_tol + 1.0 / 256;
  const double e_ref = normalized_error(fast, ref), e_slow = normalized_error(slow, ref);
  CHECK(e_ref <= tol);
  CHECK(e_slow <= tol);
  if (std::is_same_v<TC, float>) CHECK(normalized_error(fast, slow_d) <= 1e-5);
  if (!with_bias) {  // the one-thread entry (attention's per-head products), same contract
    std::vector<TC> C_ser(size_t(M * ldc)), ser(size_t(M * N));
    for (size_t i = 0; i < c0.size(); ++i) C_ser[i] = TC(float(c0[i]));
    cpu::gemm_bf16_serial<TC>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C_ser.data(), ldc);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) ser[size_t(i * N + j)] = C_ser[size_t(i * ldc + j)];
    CHECK(normalized_error(ser, ref) <= tol);
  }
  // the padding columns past N are never written
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = N; j < ldc; ++j) CHECK(float(C_fast[size_t(i * ldc + j)]) == float(c0[size_t(i * ldc + j)]));
  if (!(e_ref <= tol))
    std::printf("  M=%lld N=%lld K=%lld ta=%d tb=%d bias=%d alpha=%g beta=%g: error %g (tol %g)\n", (long long)M,
                (long long)N, (long long)K, ta, tb, with_bias, alpha, beta, e_ref, tol);
}

}  // namespace

int main() {
  std::mt19937 g(7);
  std::printf("bf16 GEMM: %s\n", cpu::gemm_bf16_impl());
  const Case cases[] = {{1, 1, 1}, {1, 37, 5}, {29, 1, 8}, {13, 33, 7}, {12, 32, 64}, {25, 65, 131},
                        {64, 96, 384}, {3, 5, 4099}, {40, 70, 8300}};
  for (const Case& c : cases)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        run_case<float>(c, ta, tb, false, 1.0f, 0.0f, g);
        run_case<cgad::bf16>(c, ta, tb, true, 1.0f, 0.0f, g);
      }
  run_case<float>({17, 45, 33}, false, true, true, 0.5f, 2.0f, g);
  run_case<cgad::bf16>({17, 45, 33}, true, false, false, -1.5f, 1.0f, g);
  // one GEMM big enough to run on every thread, with several row and column blocks
  run_case<cgad::bf16>({2100, 2090, 40}, false, true, true, 1.0f, 0.0f, g);
  // the AMX kernel's blocking: several row chunks (each thread's rows in L2-sized chunks) with a
  // partial last panel, threads splitting the columns rather than the rows, and several k
  // blocks within row chunks; every transpose (a row-major A with whole k tiles is read in place)
  const Case blocking[] = {{1500, 50, 1024}, {40, 3000, 64}, {300, 40, 5000}};
  for (const Case& c : blocking)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) run_case<float>(c, ta, tb, tb == 1, 1.0f, 0.0f, g);
  // rounding: NaN stays NaN, a tie goes to even
  {
    std::vector<bf16> a = {bf16(1.0f), bf16(NAN)}, b = {bf16(1.0f), bf16(1.0f)};
    std::vector<bf16> c(2);
    cpu::gemm_bf16<bf16>(false, false, 2, 1, 1, 1.0f, a.data(), 1, b.data(), 1, 0.0f, c.data(), 1, nullptr);
    CHECK(float(c[0]) == 1.0f && std::isnan(float(c[1])));
  }
  return cgad_test::finish("test_gemm_bf16");
}
