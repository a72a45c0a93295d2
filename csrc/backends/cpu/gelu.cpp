// CPU kernels of GELU, exact (erf) and tanh-approximated (GPT-2). Each element is independent;
// the data is cut into fixed chunks of 4096, one per parallel row.
#include <algorithm>
#include <cmath>
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "backends/cpu/vmath.h"
#include "kernels/nn.h"

namespace cgad::cpu {

namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1 / sqrt(2 pi)
constexpr double kCubic = 0.044715;

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n, bool tanh_approx) {
  const int64_t chunk = 4096, rows = (n + chunk - 1) / chunk;
  parallel_rows(rows, n, [&](int64_t r) {
    const int64_t e = std::min(n, (r + 1) * chunk);
    if (tanh_approx) {
#pragma omp simd
      for (int64_t i = r * chunk; i < e; ++i) {
        const T v = x[i];
        const T u = T(kSqrt2OverPi) * (v + T(kCubic) * v * v * v);
        y[i] = T(0.5) * v * (T(1) + vm::tanh(u));
      }
    } else {
      for (int64_t i = r * chunk; i < e; ++i) y[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * T(kInvSqrt2)));
    }
  });
}

template <typename T>
void gelu_backward(const T* x, const T* g, T* dx, int64_t n, bool tanh_approx) {
  const int64_t chunk = 4096, rows = (n + chunk - 1) / chunk;
  parallel_rows(rows, n, [&](int64_t r) {
    const int64_t e = std::min(n, (r + 1) * chunk);
    if (tanh_approx) {
#pragma omp simd
      for (int64_t i = r * chunk; i < e; ++i) {
        const T v = x[i];
        const T u = T(kSqrt2OverPi) * (v + T(kCubic) * v * v * v);
        const T th = vm::tanh(u);
        const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kCubic) * v * v);
        dx[i] = g[i] * (T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * du);
      }
    } else {
      for (int64_t i = r * chunk; i < e; ++i) {
        const T v = x[i];
        dx[i] = g[i] * (T(0.5) * (T(1) + std::erf(v * T(kInvSqrt2))) + v * T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v));
      }
    }
  });
}

void forward(const Tensor& y, const Tensor& x, bool tanh_approx) {
  dispatch_float(x.dtype(), "gelu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_forward<T>(x.data<T>(), y.data<T>(), x.numel(), tanh_approx);
  });
}

void backward(const Tensor& dx, const Tensor& x, const Tensor& g, bool tanh_approx) {
  dispatch_float(x.dtype(), "gelu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_backward<T>(x.data<T>(), g.data<T>(), dx.data<T>(), x.numel(), tanh_approx);
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(gelu_forward_kernel, forward);
CGAD_REGISTER_CPU_KERNEL(gelu_backward_kernel, backward);

}  // namespace cgad::cpu
