#include "core/allocator.h"

#include <unistd.h>
#include <cstdlib>
#include "core/error.h"

// Under AddressSanitizer the cache would hide misuse: a block's slack past the requested size and
// a released block stay addressable. Poisoning them makes an overflow into the slack or a use
// after release a report, as with malloc/free.
#if defined(__SANITIZE_ADDRESS__)  // GCC
#define CGAD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)  // clang
#define CGAD_ASAN 1
#endif
#endif
#ifdef CGAD_ASAN
#include <sanitizer/asan_interface.h>
#define CGAD_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define CGAD_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define CGAD_POISON(p, n) ((void)(p), (void)(n))
#define CGAD_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace cgad {

namespace {
Allocator*& allocator_slot(DeviceType t) {
  static Allocator* slots[kNumDeviceTypes] = {};
  return slots[size_t(t)];
}
}  // namespace

void register_allocator(DeviceType type, Allocator* a) { allocator_slot(type) = a; }

Allocator& allocator_for(Device d) {
  Allocator* a = allocator_slot(d.type);
  if (!a) {
    if (d.type == DeviceType::CUDA) throw RuntimeError(str("cannot allocate on ", d.str(), ": cgad was built without CUDA"));
    throw RuntimeError(str("cannot allocate on ", d.str(), ": this build of cgad has no ", device_type_name(d.type), " backend"));
  }
  return *a;
}

size_t CachingHostAllocator::round_size(size_t n) {
  if (n == 0) n = 1;
  if (n < 4096) return (n + 63) & ~size_t(63);
  // Above 4 KiB: 8 size classes per power of two, at most 12.5% slack.
  int lg = 63 - __builtin_clzll(n);
  size_t step = size_t(1) << (lg - 3);
  return (n + step - 1) & ~(step - 1);
}

static size_t physical_bytes() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? size_t(pages) * size_t(page) : SIZE_MAX;
}

void* CachingHostAllocator::allocate(size_t nbytes) {
  size_t sz = round_size(nbytes);
  std::lock_guard<std::mutex> lk(mu_);
  void* p = nullptr;
  auto it = free_.find(sz);
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    st_.cached_bytes -= int64_t(sz);
  } else {
    // Linux overcommits: a request beyond physical memory would "succeed" and be killed later.
    static const size_t phys = physical_bytes();
    if (sz > phys)
      throw MemoryError(str("cannot allocate ", nbytes, " bytes: more than this machine's ", phys, " bytes of memory"));
    p = std::aligned_alloc(kAlignment, sz);
    if (!p) {
      free_cached_locked();
      p = std::aligned_alloc(kAlignment, sz);
    }
    if (!p) throw MemoryError(str("cannot allocate ", nbytes, " bytes: out of memory"));
    st_.os_allocs += 1;
    st_.os_bytes += int64_t(sz);
  }
  st_.allocated_bytes += int64_t(sz);
  if (st_.allocated_bytes > st_.peak_bytes) st_.peak_bytes = st_.allocated_bytes;
  CGAD_POISON(p, sz);
  CGAD_UNPOISON(p, nbytes);
  return p;
}

void CachingHostAllocator::release(void* ptr, size_t nbytes) {
  if (!ptr) return;
  size_t sz = round_size(nbytes);
  CGAD_POISON(ptr, sz);
  std::lock_guard<std::mutex> lk(mu_);
  free_[sz].push_back(ptr);
  st_.cached_bytes += int64_t(sz);
  st_.allocated_bytes -= int64_t(sz);
}

void CachingHostAllocator::free_cached_locked() {
  for (auto& kv : free_) {
    for (void* p : kv.second) {
      CGAD_UNPOISON(p, kv.first);
      std::free(p);
      st_.os_bytes -= int64_t(kv.first);
      st_.cached_bytes -= int64_t(kv.first);
    }
    kv.second.clear();
  }
  free_.clear();
}

MemoryStats CachingHostAllocator::stats() {
  std::lock_guard<std::mutex> lk(mu_);
  return st_;
}

void CachingHostAllocator::reset_peak() {
  std::lock_guard<std::mutex> lk(mu_);
  st_.peak_bytes = st_.allocated_bytes;
}

void CachingHostAllocator::empty_cache() {
  std::lock_guard<std::mutex> lk(mu_);
  free_cached_locked();
}

}  // namespace cgad
