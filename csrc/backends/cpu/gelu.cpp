// CPU kernels of GELU, exact (erf) and tanh-approximated (GPT-2), the formulas those of
// kernels/gelu_math.h (shared with the CUDA kernel). Each element is independent;
// the data is cut into fixed chunks of 4096, one per parallel row. Data of type S is computed in
// T: bfloat16 in float32, rounded once on the store, so a bf16 activation never exists in float32.
// bf16's tanh form runs an AVX-512 kernel where the CPU has one (gelu_bf16.h).
#include <algorithm>
#include <type_traits>
#include "backends/cpu/gelu_bf16.h"
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "backends/cpu/simd_loop.h"
#include "backends/cpu/vmath.h"
#include "kernels/gelu_math.h"
#include "kernels/nn.h"

namespace cgad::cpu {

namespace {

template <typename S>
using Compute = std::conditional_t<std::is_same_v<S, bf16>, float, S>;

// Whether the bf16 tanh form runs the AVX-512 kernel (gelu_bf16.h).
template <typename S>
bool use_avx512(bool tanh_approx) {
  if constexpr (std::is_same_v<S, bf16>) return tanh_approx && detail::gelu_bf16_avx512_usable();
  return false;
}

template <typename S, typename T = Compute<S>>
void gelu_forward(const S* x, S* y, int64_t n, bool tanh_approx) {
  const int64_t chunk = 4096, rows = (n + chunk - 1) / chunk;
  const bool fast = use_avx512<S>(tanh_approx);
  parallel_rows(rows, n, [&](int64_t r) {
    const int64_t e = std::min(n, (r + 1) * chunk);
    if constexpr (std::is_same_v<S, bf16>) {
      if (fast) return detail::gelu_tanh_forward_bf16_avx512(x + r * chunk, y + r * chunk, e - r * chunk);
    }
    if (tanh_approx) {
      simd_loop<S>(r * chunk, e, [&](int64_t i) {
        const T v = T(x[i]);
        y[i] = S(math::gelu_tanh(v, vm::tanh(math::gelu_tanh_arg(v))));
      });
    } else {
      for (int64_t i = r * chunk; i < e; ++i) {
        y[i] = S(math::gelu_erf(T(x[i])));
      }
    }
  });
}

template <typename S, typename T = Compute<S>>
void gelu_backward(const S* x, const S* g, S* dx, int64_t n, bool tanh_approx) {
  const int64_t chunk = 4096, rows = (n + chunk - 1) / chunk;
  const bool fast = use_avx512<S>(tanh_approx);
  parallel_rows(rows, n, [&](int64_t r) {
    const int64_t e = std::min(n, (r + 1) * chunk);
    if constexpr (std::is_same_v<S, bf16>) {
      if (fast)
        return detail::gelu_tanh_backward_bf16_avx512(x + r * chunk, g + r * chunk, dx + r * chunk, e - r * chunk);
    }
    if (tanh_approx) {
      simd_loop<S>(r * chunk, e, [&](int64_t i) {
        const T v = T(x[i]);
        dx[i] = S(T(g[i]) * math::gelu_tanh_grad(v, vm::tanh(math::gelu_tanh_arg(v))));
      });
    } else {
      for (int64_t i = r * chunk; i < e; ++i) {
        dx[i] = S(T(g[i]) * math::gelu_erf_grad(T(x[i])));
      }
    }
  });
}

void forward(const Tensor& y, const Tensor& x, bool tanh_approx) {
  dispatch_float<true>(x.dtype(), "gelu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_forward<T>(x.data<T>(), y.data<T>(), x.numel(), tanh_approx);
  });
}

void backward(const Tensor& dx, const Tensor& x, const Tensor& g, bool tanh_approx) {
  dispatch_float<true>(x.dtype(), "gelu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    gelu_backward<T>(x.data<T>(), g.data<T>(), dx.data<T>(), x.numel(), tanh_approx);
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(gelu_forward_kernel, forward);
CGAD_REGISTER_CPU_KERNEL(gelu_backward_kernel, backward);

}  // namespace cgad::cpu
