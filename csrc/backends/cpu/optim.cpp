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
#include "kernels/adam_math.h"
#include "kernels/optim.h"

namespace cgad::cpu {

namespace {

template <typename T, math::AdamDecay D>
void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t n,
                const math::AdamConsts<T>& c) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) math::adam_update<T, D>(p[i], g[i], m[i], v[i], c);
}

template <typename T>
void adam_one(T* p, const T* g, T* m, T* v, int64_t n, const AdamHyper& hp, int64_t step) {
  using math::AdamDecay;
  const math::AdamConsts<T> c = math::adam_consts<T>(hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, step);
  const AdamDecay mode = hp.weight_decay == 0 ? AdamDecay::None : hp.decoupled ? AdamDecay::Decoupled : AdamDecay::L2;
  const int64_t chunk = 1 << 14, chunks = (n + chunk - 1) / chunk;
  const int nt = threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t c0 = 0; c0 < chunks; ++c0) {
    const int64_t b = c0 * chunk, len = std::min(n, b + chunk) - b;
    auto run = [&](auto mode_tag) { adam_chunk<T, decltype(mode_tag)::value>(p + b, g + b, m + b, v + b, len, c); };
    if (mode == AdamDecay::None) run(std::integral_constant<AdamDecay, AdamDecay::None>{});
    else if (mode == AdamDecay::Decoupled) run(std::integral_constant<AdamDecay, AdamDecay::Decoupled>{});
    else run(std::integral_constant<AdamDecay, AdamDecay::L2>{});
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
