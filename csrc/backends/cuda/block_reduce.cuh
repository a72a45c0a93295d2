// Block reductions with a fixed order, so a reduction gives the same bits on every run (no
// atomics on floating values anywhere in the backend): block_reduce_tree for a compile-time
// power-of-two block (a shared-memory tree), block_reduce for the row kernels (warp shuffles, then
// one warp over the warps' partials; blockDim.x a multiple of 32).
#pragma once
#include <cmath>
#include <cstdint>
#include <cuda_runtime.h>

namespace cgad::cuda {

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

// NaN is never the maximum, as with the CPU kernels' `x > m ? x : m`.
struct MaxOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return b > a ? b : a; }
};

struct MinOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return b < a ? b : a; }
};

// Every thread of the block (kThreads of them, a power of two) passes its partial; all get the
// total. T must be trivially constructible (it lives in shared memory).
template <int kThreads, typename T, typename Op>
__device__ T block_reduce_tree(T v, Op op) {
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

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// The reduction of every thread's v over the block, returned to all threads. `identity` is op's
// neutral element. Safe to call repeatedly in one kernel (it synchronizes before reusing its
// shared scratch).
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = (blockDim.x + 31) / 32;
  v = warp_reduce(v, op);
  __syncthreads();  // the previous call's readers are done with `partial`
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : identity;
  return warp_reduce(v, op);
}

template <typename T>
__device__ T block_sum(T v) {
  return block_reduce(v, SumOp{}, T(0));
}

template <typename T>
__device__ T block_max(T v) {
  return block_reduce(v, MaxOp{}, T(-INFINITY));
}

// The most threads a row kernel's block has: its kernels declare it as their launch bound, so
// the compiler keeps them within the registers a block this large may use.
constexpr int kMaxRowThreads = 1024;

// Threads for one block per row of `cols` elements: a warp at least, kMaxRowThreads at most.
inline int row_block_threads(int64_t cols) {
  int64_t t = 32;
  while (t < cols && t < kMaxRowThreads) t *= 2;
  return int(t);
}

// Blocks for `rows` rows, each block looping over rows gridDim.x apart.
inline unsigned row_blocks(int64_t rows) {
  return unsigned(rows < 1 ? 1 : rows > (int64_t(1) << 20) ? (int64_t(1) << 20) : rows);
}

}  // namespace cgad::cuda
