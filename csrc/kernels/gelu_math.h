// GELU and its derivative, exact (erf) and tanh-approximated (GPT-2), written once for the CPU
// loops (backends/cpu/gelu.cpp) and the CUDA kernel (backends/cuda/gelu.cu). The tanh form
// takes tanh(u) from the caller: the CPU computes it with its vectorizable vm::tanh, the GPU
// with the device's tanh, and the rest of the formula is shared.
#pragma once
#include <cmath>
#include "kernels/elementwise_math.h"  // CGAD_HD

namespace cgad::math {

inline constexpr double kGeluSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
inline constexpr double kGeluInvSqrt2 = 0.7071067811865476;
inline constexpr double kGeluInvSqrt2Pi = 0.3989422804014327;  // 1 / sqrt(2 pi)
inline constexpr double kGeluCubic = 0.044715;

// u = sqrt(2/pi) (v + 0.044715 v^3), the argument of the tanh approximation.
template <typename T>
CGAD_HD T gelu_tanh_arg(T v) {
  return T(kGeluSqrt2OverPi) * (v + T(kGeluCubic) * v * v * v);
}

// 0.5 v (1 + tanh(u)), given th = tanh(gelu_tanh_arg(v)).
template <typename T>
CGAD_HD T gelu_tanh(T v, T th) {
  return T(0.5) * v * (T(1) + th);
}

// d/dv of gelu_tanh, given th = tanh(gelu_tanh_arg(v)).
template <typename T>
CGAD_HD T gelu_tanh_grad(T v, T th) {
  const T du = T(kGeluSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * v * v);
  return T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * du;
}

// 0.5 v (1 + erf(v / sqrt 2)).
template <typename T>
CGAD_HD T gelu_erf(T v) {
  return T(0.5) * v * (T(1) + std::erf(v * T(kGeluInvSqrt2)));
}

// d/dv of gelu_erf: Phi(v) + v phi(v).
template <typename T>
CGAD_HD T gelu_erf_grad(T v) {
  return T(0.5) * (T(1) + std::erf(v * T(kGeluInvSqrt2))) + v * T(kGeluInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
}

}  // namespace cgad::math
