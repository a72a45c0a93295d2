// Where a tensor's storage lives. Kernels are looked up in the kernel table by its type.
#pragma once
#include <string>
#include "core/error.h"

namespace cgad {

// Test is a CPU-backed second device (its own allocator pool, the CPU kernels) whose memory is
// readable only inside kernels: code that passes on it would also work on a GPU.
enum class DeviceType : uint8_t { CPU, CUDA, Test };
constexpr size_t kNumDeviceTypes = 3;

const char* device_type_name(DeviceType t);

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  bool is_cpu() const { return type == DeviceType::CPU; }
  // Whether the host may read this memory directly (outside kernels): the CPU's only.
  bool host_readable() const { return type == DeviceType::CPU; }
  std::string str() const;
  // "cpu", "test", "cuda", "cuda:N"; anything else is a ValueError naming the string.
  static Device parse(const std::string& s);
};

}  // namespace cgad
