// The generic launchers of the CUDA backend, after PyTorch's GPU loops: a strided, broadcasting
// N-operand map (offset_calc.h computes each operand's offset, with the CPU's dim coalescing), a
// flat map over contiguous elements, grid sizing, and the "first failing element" record that
// the few kernels which must raise before writing (a float with no integer value, an embedding id
// out of range) read back on the host. The math each element does is a CGAD_HD function shared
// with the CPU loops; the functors here only say where it reads and writes.
#pragma once
#include <cuda_runtime.h>
#include <algorithm>
#include <array>
#include <cstdint>
#include "backends/cuda/offset_calc.h"
#include "backends/cuda/runtime.h"
#include "core/shape.h"
#include "core/tensor.h"

namespace cgad::cuda {

constexpr int kBlock = 256;
// Grid-stride loops cover the rest: this many blocks already fill every SM of an H200 many
// times over, and keep the block count well inside the grid limit.
constexpr int64_t kMaxBlocks = 1 << 16;

inline unsigned blocks_for(int64_t n, int block = kBlock) {
  return unsigned(std::clamp<int64_t>((n + block - 1) / block, 1, kMaxBlocks));
}

// f(offsets) for every linear index in [0, n) of the iteration; I is the index type of the
// offset arithmetic (32-bit where the element count allows it).
template <int N, typename I, typename F>
__global__ void strided_kernel(uint64_t n, OffsetCalc<N> calc, F f) {
  for (uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += uint64_t(gridDim.x) * blockDim.x)
    f(calc.get(I(i)));
}

// f(i) for i in [0, n): kernels over contiguous buffers.
template <typename F>
__global__ void flat_kernel(int64_t n, F f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) f(i);
}

// Runs f over the n elements of `calc`'s iteration on dev's stream.
template <int N, typename F>
void launch_strided(Device dev, int64_t n, const OffsetCalc<N>& calc, const F& f) {
  if (n <= 0) return;
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev.index);
  if (uint64_t(n) <= uint64_t(UINT32_MAX))
    strided_kernel<N, uint32_t><<<blocks_for(n), kBlock, 0, s>>>(uint64_t(n), calc, f);
  else
    strided_kernel<N, uint64_t><<<blocks_for(n), kBlock, 0, s>>>(uint64_t(n), calc, f);
  CGAD_CUDA_CHECK_LAUNCH();
}

// The calculator for the operands `ts` broadcast to `shape` (the first is usually the output).
template <size_t N>
OffsetCalc<int(N)> broadcast_calc(const Shape& shape, const std::array<const Tensor*, N>& ts) {
  std::array<Shape, N> strides;
  for (size_t k = 0; k < N; ++k) strides[k] = broadcast_strides(*ts[k], shape);
  return make_offset_calc<int(N)>(shape, strides);
}

template <typename F>
void launch_flat(Device dev, int64_t n, const F& f) {
  if (n <= 0) return;
  DeviceGuard guard(dev);
  flat_kernel<<<blocks_for(n), kBlock, 0, stream(dev.index)>>>(n, f);
  CGAD_CUDA_CHECK_LAUNCH();
}

// The lowest failing element index a check kernel found, in one device word: kernels call
// record(i) (an atomicMin, so the answer is the first failure in element order, as the CPU's
// sequential checks report it), the host calls first() after the launch, which synchronizes the
// stream. Only kernels that must raise an error before anything is written use it.
class FirstFailure {
 public:
  static constexpr unsigned long long kNone = ~0ull;

  explicit FirstFailure(Device dev) : dev_(dev), word_(empty({1}, DType::Int64, dev)) {
    DeviceGuard guard(dev);
    CGAD_CUDA_CHECK(cudaMemsetAsync(word_.raw_data(), 0xff, sizeof(unsigned long long), stream(dev.index)));
  }
  unsigned long long* device_word() const { return static_cast<unsigned long long*>(word_.raw_data()); }
  // kNone when every element passed.
  unsigned long long first() const {
    unsigned long long v = kNone;
    DeviceGuard guard(dev_);
    cudaStream_t s = stream(dev_.index);
    CGAD_CUDA_CHECK(cudaMemcpyAsync(&v, word_.raw_data(), sizeof(v), cudaMemcpyDeviceToHost, s));
    CGAD_CUDA_CHECK(cudaStreamSynchronize(s));
    return v;
  }

 private:
  Device dev_;
  Tensor word_;
};

__device__ inline void record_failure(unsigned long long* word, uint64_t i) { atomicMin(word, (unsigned long long)i); }

// Reads one element of device memory on the host (synchronizes): the value an error message names.
template <typename T>
T read_element(Device dev, const T* p) {
  T v{};
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev.index);
  CGAD_CUDA_CHECK(cudaMemcpyAsync(&v, p, sizeof(T), cudaMemcpyDeviceToHost, s));
  CGAD_CUDA_CHECK(cudaStreamSynchronize(s));
  return v;
}

}  // namespace cgad::cuda
