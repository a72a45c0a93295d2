// One row of layer_norm, as every CPU kernel that normalizes computes it (the layer_norm op and
// the fused decode step), so that both give the same numbers.
#pragma once
#include <cmath>
#include <cstdint>

namespace cgad::cpu {

// The row's mean and 1/sqrt(biased variance + eps), summed in double, each rounded to T once.
template <typename T>
inline void row_mean_rstd(const T* xr, int64_t C, double eps, T& mean, T& rstd) {
  double m = 0;
#pragma omp simd reduction(+ : m)
  for (int64_t j = 0; j < C; ++j) m += double(xr[j]);
  m /= double(C);
  double v = 0;
#pragma omp simd reduction(+ : v)
  for (int64_t j = 0; j < C; ++j) {
    const double d = double(xr[j]) - m;
    v += d * d;
  }
  v /= double(C);  // biased variance, as torch
  mean = T(m);
  rstd = T(1.0 / std::sqrt(v + eps));
}

// yr = (xr - mean) * rstd * w + b, in one vectorized pass (GPT-2's case: both w and b).
template <typename T>
inline void normalize_affine_row(const T* xr, const T* w, const T* b, T* yr, int64_t C, T mean, T rstd) {
#pragma omp simd
  for (int64_t j = 0; j < C; ++j) yr[j] = (xr[j] - mean) * rstd * w[j] + b[j];
}

}  // namespace cgad::cpu
