// The bookkeeping of the CUDA backend's caching allocators, written against a small stream/event
// interface so that it compiles without CUDA and is tested with a fake one
// (tests/cpp/test_cuda_cache.cpp). backends/cuda/allocator.cpp instantiates it twice: for device
// memory and for the pinned host buffers behind host-to-device copies.
//
// Two ways back into the cache, because the two kinds of memory are read by different parties:
// - release(): device memory is only touched by work on its device's one stream, so a freed
//   block may serve the next allocation at once: whatever uses it next is queued after whatever
//   used it before (stream order).
// - release_after(event): a pinned host block is read by an async copy the host does not wait
//   for; the host would write the next user's data into it at once, so it is reusable only once
//   the event recorded after the copy has completed (this project's history had that crash: a
//   host buffer freed while the copy still read it).
// Nothing goes back to the driver while work may still use it: empty_cache() synchronizes first
// and frees only idle blocks (free, or pending with a completed event), never those in use.
//
// The Backend provides:
//   using Event = ...;                 // a completion marker of queued work
//   void* raw_alloc(size_t nbytes);    // nullptr when the driver is out of memory
//   void raw_free(void* p);
//   bool done(Event e);                // whether the work before e has completed
//   void release_event(Event e);       // e is no longer needed
//   void synchronize();                // waits for all queued work
#pragma once
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>
#include "core/allocator.h"
#include "core/error.h"

namespace cgad::cuda {

template <typename Backend>
class BlockPool {
 public:
  using Event = typename Backend::Event;

  // `what` names the memory in errors ("cuda:0", "pinned host memory").
  BlockPool(Backend backend, std::string what) : backend_(std::move(backend)), what_(std::move(what)) {}
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block of at least nbytes, in the host allocator's size classes.
  void* allocate(size_t nbytes) {
    const size_t sz = CachingHostAllocator::round_size(nbytes);
    std::lock_guard<std::mutex> lk(mu_);
    collect_completed_locked();
    auto it = free_.find(sz);
    void* p = nullptr;
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      st_.cached_bytes -= int64_t(sz);
    } else {
      p = backend_.raw_alloc(sz);
      if (!p) {  // the cache may hold what the driver lacks: give it back and try once more
        empty_cache_locked();
        p = backend_.raw_alloc(sz);
      }
      if (!p)
        throw MemoryError(str("cannot allocate ", nbytes, " bytes on ", what_, ": out of memory (",
                              st_.allocated_bytes, " bytes in use by tensors)"));
      st_.os_allocs += 1;
      st_.os_bytes += int64_t(sz);
    }
    st_.allocated_bytes += int64_t(sz);
    if (st_.allocated_bytes > st_.peak_bytes) st_.peak_bytes = st_.allocated_bytes;
    return p;
  }

  // Back into the cache, reusable by the next allocation at once (stream-ordered memory).
  void release(void* p, size_t nbytes) {
    if (!p) return;
    const size_t sz = CachingHostAllocator::round_size(nbytes);
    std::lock_guard<std::mutex> lk(mu_);
    free_[sz].push_back(p);
    st_.allocated_bytes -= int64_t(sz);
    st_.cached_bytes += int64_t(sz);
  }

  // Back into the cache, reusable once `e` has completed; the pool owns e from here on.
  void release_after(void* p, size_t nbytes, Event e) {
    const size_t sz = CachingHostAllocator::round_size(nbytes);
    std::lock_guard<std::mutex> lk(mu_);
    pending_.push_back({p, sz, e});
    st_.allocated_bytes -= int64_t(sz);
    st_.cached_bytes += int64_t(sz);
  }

  // Waits for queued work, then returns every idle block to the driver.
  void empty_cache() {
    std::lock_guard<std::mutex> lk(mu_);
    empty_cache_locked();
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lk(mu_);
    return st_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lk(mu_);
    st_.peak_bytes = st_.allocated_bytes;
  }

  // Blocks waiting on their event (for tests).
  size_t pending_blocks() {
    std::lock_guard<std::mutex> lk(mu_);
    return pending_.size();
  }

 private:
  struct Pending {
    void* p;
    size_t size;
    Event event;
  };

  // Pending blocks whose event completed join the free lists, in release order.
  void collect_completed_locked() {
    size_t kept = 0;
    for (size_t i = 0; i < pending_.size(); ++i) {
      Pending& b = pending_[i];
      if (backend_.done(b.event)) {
        backend_.release_event(b.event);
        free_[b.size].push_back(b.p);
      } else {
        pending_[kept++] = b;
      }
    }
    pending_.resize(kept);
  }

  void empty_cache_locked() {
    backend_.synchronize();
    collect_completed_locked();
    for (auto& kv : free_) {
      for (void* p : kv.second) {
        backend_.raw_free(p);
        st_.os_bytes -= int64_t(kv.first);
        st_.cached_bytes -= int64_t(kv.first);
      }
    }
    free_.clear();
  }

  Backend backend_;
  std::string what_;
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> reusable blocks
  std::vector<Pending> pending_;                          // released, their event not yet done
  MemoryStats st_;
};

}  // namespace cgad::cuda
