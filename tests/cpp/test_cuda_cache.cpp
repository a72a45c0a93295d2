// The CUDA allocators' bookkeeping (backends/cuda/allocator_pool.h) on a fake driver whose events
// complete when the test says: no CUDA and no GPU needed. The fake hands out addresses only; the
// pool never touches the memory.
#include <cstdint>
#include <set>
#include <string>
#include "backends/cuda/allocator_pool.h"
#include "check.h"
#include "core/error.h"

using namespace cgad;

namespace {

struct FakeDriver {
  size_t limit = SIZE_MAX;  // bytes the "device" has
  size_t held = 0;          // bytes handed out by raw_alloc and not yet freed
  uintptr_t next_address = 1 << 20;
  std::set<int> completed, released_events;
  int next_event = 0, syncs = 0, frees = 0, failed_allocs = 0;
  std::unordered_map<void*, size_t> blocks;

  int record() { return next_event++; }
};

struct FakeBackend {
  using Event = int;
  FakeDriver* d;
  void* raw_alloc(size_t n) {
    if (d->held + n > d->limit) {
      ++d->failed_allocs;
      return nullptr;
    }
    void* p = reinterpret_cast<void*>(d->next_address);
    d->next_address += (n + 4095) & ~size_t(4095);
    d->held += n;
    d->blocks[p] = n;
    return p;
  }
  void raw_free(void* p) {
    d->held -= d->blocks.at(p);
    d->blocks.erase(p);
    ++d->frees;
  }
  bool done(int e) { return d->completed.count(e) > 0; }
  void release_event(int e) { d->released_events.insert(e); }
  void synchronize() { ++d->syncs; }
};

using Pool = cuda::BlockPool<FakeBackend>;

bool stats_add_up(Pool& pool, const FakeDriver& d) {
  MemoryStats s = pool.stats();
  return s.os_bytes == s.allocated_bytes + s.cached_bytes && s.os_bytes == int64_t(d.held) &&
         s.peak_bytes >= s.allocated_bytes && s.allocated_bytes >= 0 && s.cached_bytes >= 0;
}

// A pinned block behind an async copy is not handed out again until the copy's event completes.
void pinned_block_waits_for_its_event() {
  FakeDriver d;
  Pool pool(FakeBackend{&d}, "pinned host memory");
  void* a = pool.allocate(1000);
  const int copy_done = d.record();
  pool.release_after(a, 1000, copy_done);
  CHECK(pool.pending_blocks() == 1);
  void* b = pool.allocate(1000);  // the copy still reads a: a new block
  CHECK(b != a);
  CHECK(pool.stats().os_allocs == 2);
  CHECK(stats_add_up(pool, d));
  pool.release(b, 1000);
  d.completed.insert(copy_done);
  void* c = pool.allocate(1000);  // b (released plainly, last in) or a (its copy done): no new block
  void* e = pool.allocate(1000);
  CHECK((c == a && e == b) || (c == b && e == a));
  CHECK(pool.stats().os_allocs == 2);
  CHECK(pool.pending_blocks() == 0);
  CHECK(d.released_events.count(copy_done) == 1);  // the pool destroys the events it owns
  CHECK(stats_add_up(pool, d));
}

// Device memory is stream-ordered: a released block serves the next allocation of its size class
// at once; another class gets its own block.
void device_block_reused_in_stream_order() {
  FakeDriver d;
  Pool pool(FakeBackend{&d}, "cuda:0");
  void* a = pool.allocate(4096);
  pool.release(a, 4096);
  CHECK(pool.allocate(4090) == a);  // 4090 and 4096 round to one class
  void* big = pool.allocate(1 << 20);
  CHECK(big != a);
  CHECK(pool.stats().os_allocs == 2);
  MemoryStats s = pool.stats();
  CHECK(s.allocated_bytes == 4096 + (1 << 20) && s.cached_bytes == 0);
  CHECK(s.peak_bytes == s.allocated_bytes);
  pool.release(big, 1 << 20);
  CHECK(pool.stats().peak_bytes == 4096 + (1 << 20));
  pool.reset_peak();
  CHECK(pool.stats().peak_bytes == 4096);
  CHECK(stats_add_up(pool, d));
  CHECK(d.syncs == 0);  // nothing here waits for the device
}

// empty_cache waits for the stream, then frees the idle blocks only: not those in use, not
// those whose copy has not completed.
void empty_cache_frees_only_idle_blocks() {
  FakeDriver d;
  Pool pool(FakeBackend{&d}, "pinned host memory");
  void* in_use = pool.allocate(256);
  void* idle = pool.allocate(512);
  void* copying = pool.allocate(1024);
  void* copied = pool.allocate(2048);
  pool.release(idle, 512);
  const int running = d.record(), finished = d.record();
  pool.release_after(copying, 1024, running);
  pool.release_after(copied, 2048, finished);
  d.completed.insert(finished);
  pool.empty_cache();
  CHECK(d.syncs == 1);
  CHECK(d.frees == 2);
  CHECK(d.blocks.count(in_use) == 1 && d.blocks.count(copying) == 1);
  CHECK(d.blocks.count(idle) == 0 && d.blocks.count(copied) == 0);
  CHECK(pool.stats().os_bytes == 256 + 1024);
  CHECK(pool.stats().cached_bytes == 1024);
  CHECK(stats_add_up(pool, d));
  d.completed.insert(running);
  pool.empty_cache();
  CHECK(d.blocks.size() == 1 && pool.stats().cached_bytes == 0);
  pool.release(in_use, 256);
  pool.empty_cache();
  CHECK(d.blocks.empty() && pool.stats().os_bytes == 0);
  CHECK(stats_add_up(pool, d));
}

// When the driver is out of memory, the cached blocks go back to it and the allocation is tried
// once more; only if that fails too is it cgad's MemoryError, naming the size and the device.
void allocation_failure_retries_after_emptying() {
  FakeDriver d;
  d.limit = 3 << 20;
  Pool pool(FakeBackend{&d}, "cuda:0");
  void* a = pool.allocate(2 << 20);
  pool.release(a, 2 << 20);  // cached: the driver has 1 MiB left
  void* b = pool.allocate(3 << 19);  // 1.5 MiB: fits only once the cached 2 MiB are returned
  CHECK(b != nullptr);
  CHECK(d.failed_allocs == 1 && d.frees == 1 && d.syncs == 1);
  CHECK(pool.stats().cached_bytes == 0);
  CHECK(stats_add_up(pool, d));
  std::string msg;
  try {
    pool.allocate(2 << 20);  // 1.5 + 2 MiB never fit
  } catch (const MemoryError& e) {
    msg = e.what();
  }
  CHECK(msg.find("2097152 bytes") != std::string::npos);
  CHECK(msg.find("cuda:0") != std::string::npos);
  CHECK(d.failed_allocs == 3);
  CHECK(pool.stats().allocated_bytes == 3 << 19);  // the failed call changed nothing
  CHECK(stats_add_up(pool, d));
}

}  // namespace

int main() {
  pinned_block_waits_for_its_event();
  device_block_reused_in_stream_order();
  empty_cache_frees_only_idle_blocks();
  allocation_failure_retries_after_emptying();
  return cgad_test::finish("test_cuda_cache");
}
