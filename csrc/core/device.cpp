#include "core/device.h"
#include <cctype>

namespace cgad {

const char* device_type_name(DeviceType t) {
  switch (t) {
    case DeviceType::CPU: return "cpu";
    case DeviceType::CUDA: return "cuda";
    case DeviceType::Test: return "test";
  }
  return "?";
}

std::string Device::str() const {
  return type == DeviceType::CUDA ? "cuda:" + std::to_string(index) : device_type_name(type);
}

Device Device::parse(const std::string& s) {
  const char* expected = "': expected 'cpu', 'test', 'cuda' or 'cuda:N'";
  if (s == "cpu") return Device{DeviceType::CPU, 0};
  if (s == "test") return Device{DeviceType::Test, 0};
  if (s == "cuda") return Device{DeviceType::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() < 9) {
    int idx = 0;
    for (size_t i = 5; i < s.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) throw ValueError("unknown device '" + s + expected);
      idx = idx * 10 + (s[i] - '0');
    }
    return Device{DeviceType::CUDA, idx};
  }
  throw ValueError("unknown device '" + s + expected);
}

}  // namespace cgad
