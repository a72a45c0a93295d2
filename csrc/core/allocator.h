// Caching host allocator: freed blocks are kept by rounded size and handed out again, so a
// steady-state training step never goes to the OS. memory_stats() makes that observable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace cgad {

struct MemoryStats {
  int64_t os_allocs = 0;       // blocks ever obtained from the OS
  int64_t os_bytes = 0;        // bytes held from the OS now (in use + cached)
  int64_t cached_bytes = 0;    // bytes held but free, ready for reuse
  int64_t allocated_bytes = 0; // bytes handed out now
  int64_t peak_bytes = 0;      // high-water mark of allocated_bytes
};

class CpuAllocator {
 public:
  static constexpr size_t kAlignment = 64;
  static CpuAllocator& instance();
  // Returns a 64-byte aligned block of at least `nbytes`; throws MemoryError when the OS refuses.
  void* allocate(size_t nbytes);
  void release(void* ptr, size_t nbytes);
  MemoryStats stats();
  void reset_peak();
  void empty_cache();
  static size_t round_size(size_t nbytes);

 private:
  CpuAllocator() = default;
  ~CpuAllocator();
  void free_cached_locked();
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats st_;
};

}  // namespace cgad
