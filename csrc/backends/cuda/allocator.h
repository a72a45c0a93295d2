// The CUDA backend's memory (allocator.cpp): the caching device allocator registered for
// DeviceType::CUDA, and pinned host staging buffers for host-to-device copies. The bookkeeping
// of both is allocator_pool.h's.
#pragma once
#include <cuda_runtime.h>
#include <cstddef>
#include "core/allocator.h"

namespace cgad::cuda {

// A pinned host buffer behind an async host-to-device copy. Fill data(), queue the copy on
// `stream`, and let the buffer go: its destructor records an event on the stream, and the block
// is handed out again only once that event has completed, so the copy never reads memory that
// the next user is writing.
class PinnedBuffer {
 public:
  PinnedBuffer(size_t nbytes, cudaStream_t stream);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* data() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  cudaStream_t stream_ = nullptr;
};

// The pinned staging cache's counters (those of device memory are memory_stats("cuda")).
MemoryStats pinned_stats();

}  // namespace cgad::cuda
