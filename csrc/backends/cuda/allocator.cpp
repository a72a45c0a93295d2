// The CUDA backend's caching allocators: allocator_pool.h's bookkeeping over the CUDA runtime.
// Device memory: one pool per device, stream-ordered (all work runs on the device's one stream).
// Pinned host memory: one pool, each block released behind an event recorded after its copy.
#include "backends/cuda/allocator.h"

#include <array>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>
#include "backends/cuda/allocator_pool.h"
#include "backends/cuda/runtime.h"
#include "core/error.h"

namespace cgad::cuda {

namespace {

// device >= 0: device memory of that device; device < 0: pinned host memory.
struct CudaBackend {
  using Event = cudaEvent_t;
  int device;

  void* raw_alloc(size_t n) {
    void* p = nullptr;
    cudaError_t e;
    if (device < 0) {
      e = cudaHostAlloc(&p, n, cudaHostAllocDefault);
    } else {
      DeviceGuard guard(device);
      e = cudaMalloc(&p, n);
    }
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: the pool empties its cache and tries again
      return nullptr;
    }
    CGAD_CUDA_CHECK(e);
    return p;
  }

  void raw_free(void* p) {
    if (device < 0) {
      CGAD_CUDA_CHECK(cudaFreeHost(p));
    } else {
      DeviceGuard guard(device);
      CGAD_CUDA_CHECK(cudaFree(p));
    }
  }

  bool done(cudaEvent_t e) {
    const cudaError_t r = cudaEventQuery(e);
    if (r == cudaErrorNotReady) {
      cudaGetLastError();
      return false;
    }
    CGAD_CUDA_CHECK(r);
    return true;
  }

  void release_event(cudaEvent_t e) { CGAD_CUDA_CHECK(cudaEventDestroy(e)); }

  // Device memory waits for its stream; pinned memory may be read by copies on any device.
  void synchronize() {
    if (device >= 0) {
      cuda::synchronize(device);
      return;
    }
    for (int d = 0; d < device_count(); ++d) {
      DeviceGuard guard(d);
      CGAD_CUDA_CHECK(cudaDeviceSynchronize());
    }
  }
};

using Pool = BlockPool<CudaBackend>;

// Device memory of the current device (ops allocate under the DeviceGuard of their tensors'
// device; the Allocator interface carries no device index). Each block remembers its pool.
class CudaAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (device_count() == 0)
      throw RuntimeError("cannot allocate on cuda: cgad was built with CUDA, but no CUDA device is available");
    int device = 0;
    CGAD_CUDA_CHECK(cudaGetDevice(&device));
    void* p = pool(device).allocate(nbytes);
    std::lock_guard<std::mutex> lk(mu_);
    owner_[p] = device;
    return p;
  }

  void release(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    int device = 0;
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = owner_.find(ptr);
      if (it == owner_.end()) return;
      device = it->second;
      owner_.erase(it);
    }
    pool(device).release(ptr, nbytes);
  }

  MemoryStats stats() override {
    MemoryStats total;
    for_each_pool([&](Pool& p) {
      MemoryStats s = p.stats();
      total.os_allocs += s.os_allocs;
      total.os_bytes += s.os_bytes;
      total.cached_bytes += s.cached_bytes;
      total.allocated_bytes += s.allocated_bytes;
      total.peak_bytes += s.peak_bytes;
    });
    return total;
  }

  void reset_peak() override { for_each_pool([](Pool& p) { p.reset_peak(); }); }
  void empty_cache() override { for_each_pool([](Pool& p) { p.empty_cache(); }); }

 private:
  Pool& pool(int device) {
    CGAD_CHECK(device >= 0 && device < kMaxDevices, RuntimeError, "CUDA device ", device, " is out of range");
    std::lock_guard<std::mutex> lk(pools_mu_);
    auto& p = pools_[size_t(device)];
    if (!p) p = std::make_unique<Pool>(CudaBackend{device}, "cuda:" + std::to_string(device));
    return *p;
  }

  // Each pool has its own lock; the list is read under pools_mu_ and walked outside it.
  template <typename F>
  void for_each_pool(F f) {
    std::vector<Pool*> pools;
    {
      std::lock_guard<std::mutex> lk(pools_mu_);
      for (auto& p : pools_)
        if (p) pools.push_back(p.get());
    }
    for (Pool* p : pools) f(*p);
  }

  std::mutex pools_mu_;
  std::array<std::unique_ptr<Pool>, kMaxDevices> pools_;  // created on a device's first allocation
  std::mutex mu_;
  std::unordered_map<void*, int> owner_;  // block -> its device
};

// Both leaked on purpose, as the CPU's: tensors owned by Python objects may be freed after static
// destructors ran.
CudaAllocator& cuda_allocator() {
  static CudaAllocator* a = std::make_unique<CudaAllocator>().release();
  return *a;
}

Pool& pinned_pool() {
  static Pool* p = std::make_unique<Pool>(CudaBackend{-1}, "pinned host memory").release();
  return *p;
}

[[maybe_unused]] const bool cuda_allocator_registered = (register_allocator(DeviceType::CUDA, &cuda_allocator()), true);

}  // namespace

PinnedBuffer::PinnedBuffer(size_t nbytes, cudaStream_t stream)
    : data_(pinned_pool().allocate(nbytes)), nbytes_(nbytes), stream_(stream) {}

PinnedBuffer::~PinnedBuffer() {
  // A destructor cannot throw: should the event fail, waiting for the stream makes the block
  // idle; should that fail too, the block is leaked rather than handed out under a running copy.
  cudaEvent_t e = nullptr;
  if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) == cudaSuccess) {
    if (cudaEventRecord(e, stream_) == cudaSuccess) {
      pinned_pool().release_after(data_, nbytes_, e);
      return;
    }
    cudaEventDestroy(e);
  }
  cudaGetLastError();
  if (cudaStreamSynchronize(stream_) == cudaSuccess) pinned_pool().release(data_, nbytes_);
  cudaGetLastError();
}

MemoryStats pinned_stats() { return pinned_pool().stats(); }

}  // namespace cgad::cuda
