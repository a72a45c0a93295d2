// The one random generator (init, randn, dropout, sampling): counter-based Philox4x32-10, so
// element i of a draw depends only on (seed, offset + i). Results are identical for any thread
// count and the state is just (seed, offset).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>
#include "core/hd.h"

namespace cgad {

struct Generator {
  uint64_t seed = 0x853c49e6748fea9bULL;
  uint64_t offset = 0;  // counters consumed so far

  static Generator& global();
  void manual_seed(uint64_t s) { seed = s; offset = 0; }
  // Reserves n counters and returns the first.
  uint64_t reserve(uint64_t n) { uint64_t o = offset; offset += n; return o; }
  std::vector<uint8_t> get_state() const;
  void set_state(const std::vector<uint8_t>& s);  // ValueError on a wrong size
};

// Philox's output block: four 32-bit words (a plain struct, not std::array, so device code can
// index it).
struct PhiloxWords {
  uint32_t w[4];
  CGAD_HD uint32_t operator[](size_t i) const { return w[i]; }
};

// Four independent 32-bit words for counter c under key seed. Inline and CGAD_HD: the CUDA
// kernels call this same function, so a draw is identical on every device.
CGAD_HD inline PhiloxWords philox(uint64_t seed, uint64_t c) {
  uint32_t x0 = uint32_t(c), x1 = uint32_t(c >> 32), x2 = 0, x3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint64_t p0 = uint64_t(0xD2511F53u) * x0, p1 = uint64_t(0xCD9E8D57u) * x2;
    uint32_t y0 = uint32_t(p1 >> 32) ^ x1 ^ k0, y1 = uint32_t(p1);
    uint32_t y2 = uint32_t(p0 >> 32) ^ x3 ^ k1, y3 = uint32_t(p0);
    x0 = y0; x1 = y1; x2 = y2; x3 = y3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{x0, x1, x2, x3}};
}

// Uniform in [0, 1) from a 32-bit word (24 bits of mantissa, as torch's float sampling).
CGAD_HD inline float uniform_from(uint32_t w) { return float(w >> 8) * (1.0f / 16777216.0f); }
CGAD_HD inline double uniform_from64(uint32_t hi, uint32_t lo) {
  return double(((uint64_t(hi) << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace cgad
