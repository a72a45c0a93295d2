// CPU kernels of Adam/AdamW and of clip_grad_norm_. Adam's update follows torch.optim.Adam's
// single-tensor path operation by operation (lerp for exp_avg, mul + addcmul for exp_avg_sq,
// sqrt / bias_correction2_sqrt + eps, addcdiv), each rounded to the parameter's dtype, so
// trajectories match torch's to rounding.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>
#include "backends/cpu/maps.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/register.h"
#include "kernels/optim.h"

namespace cgad::cpu {

namespace {

// The weight-decay mode is a template parameter so the loop has no branches and vectorizes;
// every element goes through the same operations as torch's.
enum class Decay { None, Decoupled, L2 };

template <typename T, Decay D>
void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t n, T w1,
                T beta2, T one_m_b2, T step_size, T bc2_sqrt, T eps, T decay, T wd) {
  const bool lerp_low = w1 < T(0.5);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i];
    T pi = p[i];
    if constexpr (D == Decay::Decoupled) pi = pi * decay;
    if constexpr (D == Decay::L2) gi = gi + pi * wd;
    // torch's lerp: start + w * (end - start) for w < 0.5, else end - (end - start) * (1 - w)
    const T mi = lerp_low ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * (T(1) - w1);
    T vi = v[i] * beta2;
    vi = vi + one_m_b2 * gi * gi;
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + (-step_size) * mi / denom;
  }
}

template <typename T>
void adam_one(T* p, const T* g, T* m, T* v, int64_t n, const AdamHyper& hp, int64_t step) {
  const T lr = T(hp.lr), wd = T(hp.weight_decay), eps = T(hp.eps);
  const T w1 = T(1 - hp.beta1), beta2 = T(hp.beta2), one_m_b2 = T(1 - hp.beta2);
  const double bc1 = 1 - std::pow(hp.beta1, double(step)), bc2 = 1 - std::pow(hp.beta2, double(step));
  const T step_size = T(hp.lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
  const T decay = T(1) - lr * wd;
  const Decay mode = hp.weight_decay == 0 ? Decay::None : hp.decoupled ? Decay::Decoupled : Decay::L2;
  const int64_t chunk = 1 << 14, chunks = (n + chunk - 1) / chunk;
  const int nt = threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * chunk, len = std::min(n, b + chunk) - b;
    auto run = [&](auto mode_tag) {
      adam_chunk<T, decltype(mode_tag)::value>(p + b, g + b, m + b, v + b, len, w1, beta2, one_m_b2, step_size,
                                               bc2_sqrt, eps, decay, wd);
    };
    if (mode == Decay::None) run(std::integral_constant<Decay, Decay::None>{});
    else if (mode == Decay::Decoupled) run(std::integral_constant<Decay, Decay::Decoupled>{});
    else run(std::integral_constant<Decay, Decay::L2>{});
  }
}

void adam(const std::vector<AdamSlot>& slots, const AdamHyper& hp) {
  for (const AdamSlot& s : slots) {
    dispatch_float(s.param.dtype(), "Adam", [&](auto tag) {
      using T = typename decltype(tag)::type;
      adam_one<T>(s.param.data<T>(), s.grad.data<T>(), s.exp_avg.data<T>(), s.exp_avg_sq.data<T>(), s.param.numel(), hp,
                  s.step);
    });
  }
}

// Each thread sums a fixed block in a fixed SIMD order; the blocks are added in order.
template <typename T>
double sum_squares(const T* x, int64_t n) {
  const int nt = threads_for(n);
  std::vector<double> part(size_t(nt), 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    double s = 0;
    const int64_t b = n * tid / nth, e = n * (tid + 1) / nth;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b; i < e; ++i) s += double(x[i]) * double(x[i]);
    part[size_t(tid)] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// Each grad's norm is rounded to float32, as torch's per-tensor norms are, and the total is the
// norm of those norms.
void grad_norm(const Tensor& norm, const std::vector<Tensor>& grads) {
  double total_sq = 0;
  for (const Tensor& g : grads) {
    const double sq = dispatch_float(g.dtype(), "clip_grad_norm_", [&](auto tag) {
      using T = typename decltype(tag)::type;
      return sum_squares<T>(g.data<T>(), g.numel());
    });
    const double n = double(float(std::sqrt(sq)));
    total_sq += n * n;
  }
  *norm.data<float>() = float(std::sqrt(total_sq));
}

void clip_scale(const std::vector<Tensor>& grads, const Tensor& norm, double max_norm) {
  const float coef = std::min(float(max_norm) / (*norm.data<float>() + 1e-6f), 1.0f);
  if (coef == 1.0f) return;  // x * 1 == x: skip the pass
  for (const Tensor& g : grads) scale_inplace(g, double(coef));
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(adam_kernel, adam);
CGAD_REGISTER_CPU_KERNEL(grad_norm_kernel, grad_norm);
CGAD_REGISTER_CPU_KERNEL(clip_scale_kernel, clip_scale);

}  // namespace cgad::cpu
