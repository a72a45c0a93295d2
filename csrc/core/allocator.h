// The allocator interface, one allocator per device type, and the caching host allocator behind
// the CPU and the "test" device. A caching allocator keeps freed blocks by rounded size and hands
// them out again, so a steady-state training step never goes to the OS; memory_stats() makes
// that observable per device.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>
#include "core/device.h"

namespace cgad {

struct MemoryStats {
  int64_t os_allocs = 0;       // blocks ever obtained from the OS (or the driver)
  int64_t os_bytes = 0;        // bytes held from the OS now (in use + cached)
  int64_t cached_bytes = 0;    // bytes held but free, ready for reuse
  int64_t allocated_bytes = 0; // bytes handed out now
  int64_t peak_bytes = 0;      // high-water mark of allocated_bytes
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // A 64-byte aligned block of at least `nbytes`; MemoryError when it cannot be had.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void release(void* ptr, size_t nbytes) = 0;
  virtual MemoryStats stats() = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() = 0;
};

// Backends register their device type's allocator at static initialisation (they live for the
// whole process: tensors owned by Python objects may be freed after static destructors ran).
void register_allocator(DeviceType type, Allocator* a);
// The allocator of d's type; RuntimeError naming the device when this build has none.
Allocator& allocator_for(Device d);

class CachingHostAllocator final : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;
  void* allocate(size_t nbytes) override;
  void release(void* ptr, size_t nbytes) override;
  MemoryStats stats() override;
  void reset_peak() override;
  void empty_cache() override;
  static size_t round_size(size_t nbytes);

 private:
  void free_cached_locked();
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats st_;
};

}  // namespace cgad
