#include "core/rng.h"
#include <cstring>
#include "core/error.h"

namespace cgad {

Generator& Generator::global() {
  static Generator g;
  return g;
}

std::vector<uint8_t> Generator::get_state() const {
  std::vector<uint8_t> s(16);
  std::memcpy(s.data(), &seed, 8);
  std::memcpy(s.data() + 8, &offset, 8);
  return s;
}

void Generator::set_state(const std::vector<uint8_t>& s) {
  if (s.size() != 16) throw ValueError(str("set_rng_state: expected a state of 16 bytes, got ", s.size()));
  std::memcpy(&seed, s.data(), 8);
  std::memcpy(&offset, s.data() + 8, 8);
}

std::array<uint32_t, 4> philox(uint64_t seed, uint64_t c) {
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
  return {x0, x1, x2, x3};
}

}  // namespace cgad
