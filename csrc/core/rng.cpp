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

}  // namespace cgad
