// The one random generator (init, randn, dropout, sampling): counter-based Philox4x32-10, so
// element i of a draw depends only on (seed, offset + i). Results are identical for any thread
// count and the state is just (seed, offset).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

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

// Four independent 32-bit words for counter c under key seed.
std::array<uint32_t, 4> philox(uint64_t seed, uint64_t c);

// Uniform in [0, 1) from a 32-bit word (24 bits of mantissa, as torch's float sampling).
inline float uniform_from(uint32_t w) { return float(w >> 8) * (1.0f / 16777216.0f); }
inline double uniform_from64(uint32_t hi, uint32_t lo) {
  return double(((uint64_t(hi) << 32) | lo) >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace cgad
