#include "core/device.h"
#include <cctype>

namespace cgad {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return Device{DeviceType::CPU, 0};
  if (s == "cuda") return Device{DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9) {
    int idx = 0;
    for (size_t i = 5; i < s.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) throw ValueError("unknown device '" + s + "': expected 'cpu', 'cuda' or 'cuda:N'");
      idx = idx * 10 + (s[i] - '0');
    }
    return Device{DeviceType::CUDA, idx};
  }
  throw ValueError("unknown device '" + s + "': expected 'cpu', 'cuda' or 'cuda:N'");
}

}  // namespace cgad
