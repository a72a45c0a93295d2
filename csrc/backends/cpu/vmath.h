// exp and tanh written so the compiler vectorizes them (std::exp/std::tanh calls do not
// vectorize without -ffast-math, which cgad never uses). The float versions are accurate to a
// few ulp (Cody-Waite range reduction and cephes' expf polynomial) and keep IEEE behaviour at
// the edges: exp(-inf) = 0, exp(+inf) = inf, NaN stays NaN. The double versions call std:: so the
// float64 reference path stays exact.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace cgad::vm {

inline float exp(float x) {
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (xc * 1.44269504088896341f + shifter) - shifter;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float y = p * scale;
  y = x < -87.0f ? 0.0f : y;  // below exp's float range (and -inf)
  y = x > 88.0f ? std::numeric_limits<float>::infinity() : y;
  return x != x ? x : y;
}

inline double exp(double x) { return std::exp(x); }

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|). Near 0 the absolute error stays ~1e-7
// (what GELU needs); the relative error there is larger than std::tanh's.
inline float tanh(float x) {
  const float e = vm::exp(-2.0f * std::fabs(x));
  const float t = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -t : t;
}

inline double tanh(double x) { return std::tanh(x); }

}  // namespace cgad::vm
