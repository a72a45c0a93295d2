// CPU kernels against naive loops: GEMM (all transpose flags), softmax, layer_norm, gelu and
// cross_entropy on random inputs.
#include <cmath>
#include <random>
#include <vector>
#include "backends/cpu/gemm.h"
#include "check.h"
#include "ops/ops.h"

using namespace cgad;

namespace {

Tensor random_tensor(const Shape& s, std::mt19937& g) {
  Tensor t = empty(s, DType::Float64, Device{});
  std::normal_distribution<double> n;
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = n(g);
  return t;
}

void test_gemm(std::mt19937& g) {
  const int64_t M = 7, N = 5, K = 9;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Tensor A = random_tensor({M * K}, g), B = random_tensor({K * N}, g);
      std::vector<double> C(size_t(M * N), 1.0), ref(size_t(M * N), 0.0);
      const double* a = A.data<double>();
      const double* b = B.data<double>();
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
          ref[size_t(i * N + j)] = 2.0 * s + 0.5;
        }
      cpu::gemm<double>(ta, tb, M, N, K, 2.0, a, ta ? M : K, b, tb ? K : N, 0.5, C.data(), N);
      for (size_t i = 0; i < C.size(); ++i) CHECK_NEAR(C[i], ref[i], 1e-12);
    }
}

void test_row_ops(std::mt19937& g) {
  const int64_t R = 6, C = 11;
  Tensor x = random_tensor({R, C}, g);
  Tensor sm = softmax(x, -1), ln = layer_norm(x, {C}, Tensor(), Tensor(), 1e-5), ge = gelu(x, true);
  Tensor tg = full({R}, 3.0, DType::Int64, Device{});
  Tensor ce = cross_entropy(x, tg, -100);
  const double* px = x.data<double>();
  double nll = 0;
  for (int64_t r = 0; r < R; ++r) {
    double mx = -INFINITY, s = 0, mean = 0, var = 0;
    for (int64_t j = 0; j < C; ++j) mx = std::max(mx, px[r * C + j]);
    for (int64_t j = 0; j < C; ++j) s += std::exp(px[r * C + j] - mx);
    for (int64_t j = 0; j < C; ++j) mean += px[r * C + j] / C;
    for (int64_t j = 0; j < C; ++j) var += (px[r * C + j] - mean) * (px[r * C + j] - mean) / C;
    nll += mx + std::log(s) - px[r * C + 3];
    for (int64_t j = 0; j < C; ++j) {
      const double v = px[r * C + j];
      CHECK_NEAR(sm.data<double>()[r * C + j], std::exp(v - mx) / s, 1e-14);
      CHECK_NEAR(ln.data<double>()[r * C + j], (v - mean) / std::sqrt(var + 1e-5), 1e-12);
      const double u = std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v);
      CHECK_NEAR(ge.data<double>()[r * C + j], 0.5 * v * (1 + std::tanh(u)), 1e-14);
    }
  }
  CHECK_NEAR(ce.data<double>()[0], nll / R, 1e-12);
}

}  // namespace

int main() {
  std::mt19937 g(42);
  test_gemm(g);
  test_row_ops(g);
  return cgad_test::finish("test_kernels");
}
