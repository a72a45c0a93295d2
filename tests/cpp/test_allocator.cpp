// The caching allocator: alignment, reuse of freed blocks without new OS allocations, stats.
#include <cstdint>
#include "check.h"
#include "core/allocator.h"
#include "core/error.h"
#include "core/tensor.h"

using namespace cgad;

int main() {
  CpuAllocator& a = CpuAllocator::instance();
  {
    Tensor t = empty({1000}, DType::Float32);
    CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  }
  const int64_t before = a.stats().os_allocs;
  for (int i = 0; i < 100; ++i) {
    Tensor t = empty({1000}, DType::Float32);  // the freed block of the same size class comes back
    Tensor u = empty({37, 3}, DType::Float64);
  }
  const int64_t after_loop = a.stats().os_allocs;
  CHECK(after_loop - before <= 1);  // at most the (37, 3) block's first allocation
  MemoryStats s = a.stats();
  CHECK(s.cached_bytes > 0 && s.allocated_bytes == 0 && s.peak_bytes >= 4000);
  a.empty_cache();
  CHECK(a.stats().cached_bytes == 0 && a.stats().os_bytes == 0);
  CHECK_THROWS(MemoryError, empty({int64_t(1) << 45}, DType::Float32));  // 128 TiB
  return cgad_test::finish("test_allocator");
}
