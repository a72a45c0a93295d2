// The per-counter math of the random kernels, written once for the CPU (backends/cpu/creation.cpp,
// dropout.cpp) and CUDA (backends/cuda/random.cu): each draw is a function of (seed, counter)
// only, so every device and thread count gives the same numbers.
#pragma once
#include <cmath>
#include <cstdint>
#include "core/hd.h"
#include "core/rng.h"

namespace cgad::math {

struct NormalPair {
  double z0, z1;
};

// Two standard normals from counter c: Box-Muller on doubles, u1 in (0, 1] so the log is finite.
CGAD_HD inline NormalPair normal_pair(uint64_t seed, uint64_t c) {
  const PhiloxWords w = philox(seed, c);
  const double u1 = 1.0 - uniform_from64(w[0], w[1]);
  const double u2 = uniform_from64(w[2], w[3]);
  const double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
  return {r * std::cos(th), r * std::sin(th)};
}

// A uniform double in [0, 1) from counter c (rand, multinomial).
CGAD_HD inline double uniform64(uint64_t seed, uint64_t c) {
  const PhiloxWords w = philox(seed, c);
  return uniform_from64(w[0], w[1]);
}

// Dropout: element i of the mask reads word i % 4 of counter base + i / 4 and is dropped when
// that uniform is below p; `keep` is 1 / (1 - p).
template <typename T>
CGAD_HD inline T dropout_value(const PhiloxWords& w, int k, float p, T keep) {
  return uniform_from(w[size_t(k)]) < p ? T(0) : keep;
}

}  // namespace cgad::math
