// A block-wide reduction in shared memory with a fixed tree (thread t adds t + s for s = half the
// block, then a quarter, ...), so a reduction gives the same bits on every run: no atomics on
// floating values anywhere in the backend's reductions.
#pragma once
#include <cuda_runtime.h>

namespace cgad::cuda {

// Every thread of the block (kThreads of them, a power of two) passes its partial; all get the
// total. T must be trivially constructible (it lives in shared memory).
template <int kThreads, typename T, typename Op>
__device__ T block_reduce(T v, Op op) {
  static_assert((kThreads & (kThreads - 1)) == 0, "kThreads must be a power of two");
  __shared__ T buf[kThreads];
  const int t = int(threadIdx.x);
  buf[t] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (t < s) buf[t] = op(buf[t], buf[t + s]);
    __syncthreads();
  }
  const T r = buf[0];
  __syncthreads();  // buf is reused by the next call
  return r;
}

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

struct MinOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return b < a ? b : a; }
};

}  // namespace cgad::cuda
