// Copies between the CPU and a CUDA device (kernels/elementwise.h: contiguous tensors of one
// dtype and shape; the op has made them so). Device-to-device copies are copy_kernel's.
#include <algorithm>
#include <cstring>
#include "backends/cuda/allocator.h"
#include "backends/cuda/runtime.h"
#include "core/dispatch.h"
#include "kernels/elementwise.h"

namespace cgad::cuda {

namespace {

// Host data is staged through pinned buffers of at most this size: the copy runs asynchronously
// from them (the CPU tensor may be freed as soon as this returns), a large tensor does not pin
// as much host memory as itself, and staging one chunk overlaps the previous chunk's copy.
constexpr size_t kStagingChunk = size_t(4) << 20;

void copy_from_cpu(const Tensor& dst, const Tensor& src) {
  const size_t n = size_t(dst.numel()) * itemsize(dst.dtype());
  if (n == 0) return;
  const int device = dst.device().index;
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  char* out = static_cast<char*>(dst.raw_data());
  const char* in = static_cast<const char*>(src.raw_data());
  for (size_t off = 0; off < n; off += kStagingChunk) {
    const size_t len = std::min(kStagingChunk, n - off);
    PinnedBuffer staging(len, s);  // reused only after the event its destructor records
    std::memcpy(staging.data(), in + off, len);
    CGAD_CUDA_CHECK(cudaMemcpyAsync(out + off, staging.data(), len, cudaMemcpyHostToDevice, s));
  }
}

// The host reads dst as soon as this returns (.numpy(), .item()): the copy is waited for.
void copy_to_cpu(const Tensor& dst, const Tensor& src) {
  const size_t n = size_t(dst.numel()) * itemsize(dst.dtype());
  if (n == 0) return;
  const int device = src.device().index;
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  CGAD_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), n, cudaMemcpyDeviceToHost, s));
  synchronize(device);
}

}  // namespace

CGAD_REGISTER_KERNEL(copy_from_cpu_kernel, CUDA, copy_from_cpu);
CGAD_REGISTER_KERNEL(copy_to_cpu_kernel, CUDA, copy_to_cpu);

}  // namespace cgad::cuda
