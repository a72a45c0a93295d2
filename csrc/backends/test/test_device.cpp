// The "test" device: host memory from its own caching pool, registered in the table with the
// CPU kernels (backends/cpu/register.h) plus the copies between it and the CPU. Like PyTorch's
// CPU-backed "openreg" test device, it lets the CPU-only build prove that ops keep their device:
// its memory is readable only inside kernels (Tensor::raw_data), mixing it with the CPU in one op
// is the device-mismatch error, and memory_stats("cpu") shows any hidden CPU buffer.
#include <cstring>
#include <memory>
#include "core/allocator.h"
#include "core/dispatch.h"
#include "kernels/elementwise.h"

namespace cgad::test_device {

namespace {

CachingHostAllocator& test_allocator() {
  // Leaked on purpose, as the CPU's (tensors may be freed after static destructors ran).
  static CachingHostAllocator* a = std::make_unique<CachingHostAllocator>().release();
  return *a;
}

[[maybe_unused]] const bool test_allocator_registered = (register_allocator(DeviceType::Test, &test_allocator()), true);

// Both tensors contiguous, of one dtype and shape (the op makes them so).
void host_copy(const Tensor& dst, const Tensor& src) {
  const size_t n = size_t(dst.numel()) * itemsize(dst.dtype());
  if (n) std::memcpy(dst.raw_data(), src.raw_data(), n);
}

}  // namespace

CGAD_REGISTER_KERNEL(copy_from_cpu_kernel, Test, host_copy);
CGAD_REGISTER_KERNEL(copy_to_cpu_kernel, Test, host_copy);

}  // namespace cgad::test_device
