// The caching allocator: alignment, reuse of freed blocks without new OS allocations, stats.
#include <cstdint>
#include "check.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/tensor.h"

using namespace cgad;

int main() {
  Allocator& a = allocator_for(Device{});
  {
    Tensor t = empty({1000}, DType::Float32, Device{});
    CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  }
  const int64_t before = a.stats().os_allocs;
  for (int i = 0; i < 100; ++i) {
    Tensor t = empty({1000}, DType::Float32, Device{});  // the freed block of the same size class comes back
    Tensor u = empty({37, 3}, DType::Float64, Device{});
  }
  const int64_t after_loop = a.stats().os_allocs;
  CHECK(after_loop - before <= 1);  // at most the (37, 3) block's first allocation
  MemoryStats s = a.stats();
  CHECK(s.cached_bytes > 0 && s.allocated_bytes == 0 && s.peak_bytes >= 4000);
  a.empty_cache();
  CHECK(a.stats().cached_bytes == 0 && a.stats().os_bytes == 0);
  CHECK_THROWS(MemoryError, empty({int64_t(1) << 45}, DType::Float32, Device{}));  // 128 TiB
  // The "test" device has a pool of its own: its tensors never show in the CPU's counters.
  Allocator& t = allocator_for(Device::parse("test"));
  const int64_t cpu_before = a.stats().allocated_bytes;
  {
    Tensor x = empty({1000}, DType::Float32, Device::parse("test"));
    CHECK(t.stats().allocated_bytes >= 4000);
    CHECK(a.stats().allocated_bytes == cpu_before);
    CHECK_THROWS(RuntimeError, x.raw_data());  // its memory is readable inside kernels only
  }
  CHECK(t.stats().allocated_bytes == 0);
  return cgad_test::finish("test_allocator");
}
