// Where a tensor's storage lives. Kernels are dispatched on it.
#pragma once
#include <string>
#include "core/error.h"

namespace cgad {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cpu() const { return type == DeviceType::CPU; }
  std::string str() const { return type == DeviceType::CPU ? "cpu" : "cuda:" + std::to_string(index); }
  // "cpu", "cuda", "cuda:N"; anything else is a ValueError naming the string.
  static Device parse(const std::string& s);
};

}  // namespace cgad
