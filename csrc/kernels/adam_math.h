// One element of Adam/AdamW's update, written once for the CPU loop (backends/cpu/optim.cpp) and
// the CUDA multi-tensor kernel (backends/cuda/optim.cu). It follows torch.optim.Adam's
// single-tensor path operation by operation (lerp for exp_avg, mul + addcmul for exp_avg_sq,
// sqrt / bias_correction2_sqrt + eps, addcdiv), each rounded to the parameter's dtype.
#pragma once
#include <cmath>
#include "core/hd.h"

namespace cgad::math {

// The weight-decay mode is a template parameter so the loop has no branches and vectorizes.
enum class AdamDecay { None, Decoupled, L2 };

// The per-step constants of one parameter, in its dtype.
template <typename T>
struct AdamConsts {
  T w1;         // 1 - beta1, lerp's weight
  T beta2, one_m_b2;
  T step_size;  // lr / bias_correction1
  T bc2_sqrt;   // sqrt(bias_correction2)
  T eps;
  T decay;      // 1 - lr * weight_decay (AdamW)
  T wd;         // weight_decay (Adam's L2)
  bool lerp_low;  // w1 < 0.5: which of torch's two lerp formulas
};

// The constants for step `step` (>= 1) from the hyperparameters, computed in double as torch
// computes them on the host.
template <typename T>
AdamConsts<T> adam_consts(double lr, double beta1, double beta2, double eps, double weight_decay, int64_t step) {
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  AdamConsts<T> c;
  c.w1 = T(1 - beta1);
  c.beta2 = T(beta2);
  c.one_m_b2 = T(1 - beta2);
  c.step_size = T(lr / bc1);
  c.bc2_sqrt = T(std::sqrt(bc2));
  c.eps = T(eps);
  c.decay = T(1) - T(lr) * T(weight_decay);
  c.wd = T(weight_decay);
  c.lerp_low = c.w1 < T(0.5);
  return c;
}

template <typename T, AdamDecay D>
CGAD_HD inline void adam_update(T& p, T g, T& m, T& v, const AdamConsts<T>& c) {
  T pi = p;
  if constexpr (D == AdamDecay::Decoupled) pi = pi * c.decay;
  if constexpr (D == AdamDecay::L2) g = g + pi * c.wd;
  // torch's lerp: start + w * (end - start) for w < 0.5, else end - (end - start) * (1 - w)
  const T mi = c.lerp_low ? m + c.w1 * (g - m) : g - (g - m) * (T(1) - c.w1);
  T vi = v * c.beta2;
  vi = vi + c.one_m_b2 * g * g;
  const T denom = std::sqrt(vi) / c.bc2_sqrt + c.eps;
  m = mi;
  v = vi;
  p = pi + (-c.step_size) * mi / denom;
}

}  // namespace cgad::math
