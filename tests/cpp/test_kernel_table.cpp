// The kernel table walk: every stub the ops define has a kernel for the CPU and for the "test"
// device, and a device without a kernel is a RuntimeError naming the stub and the device.
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include "check.h"
#include "core/dispatch.h"
#include "kernels/elementwise.h"

using namespace cgad;

int main() {
  const auto& stubs = kernel_stubs();
  CHECK(stubs.size() >= 10);
  std::set<std::string> names;
  for (const KernelStubBase* s : stubs) {
    CHECK(names.insert(s->name).second);  // each stub defined once
    if (!s->has(DeviceType::CPU) || !s->has(DeviceType::Test)) std::printf("missing kernel: %s\n", s->name);
    // copy_from/to_cpu move data between a device and the CPU, so the CPU itself has none
    const bool cross_device = std::strstr(s->name, "_cpu_kernel") != nullptr;
    CHECK(cross_device || s->has(DeviceType::CPU));
    CHECK(s->has(DeviceType::Test));
  }
  CHECK(names.count("binary_kernel") && names.count("copy_kernel") && names.count("fill_kernel"));
  CHECK(names.count("gemm_kernel") && names.count("linear_kernel") && names.count("attention_forward_kernel") &&
        names.count("attention_backward_kernel"));
  // This build has no CUDA backend: asking it for a kernel names the stub and the device.
  Tensor t = empty({2}, DType::Float32, Device{});
  try {
    fill_kernel()(Device{DeviceType::CUDA, 0}, t, 1.0);
    CHECK(false);
  } catch (const RuntimeError& e) {
    CHECK(std::string(e.what()) == "fill_kernel: no cuda kernel");
  }
  return cgad_test::finish("test_kernel_table");
}
