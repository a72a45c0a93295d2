// Warp and block reductions for the row kernels (one block per row): a fixed tree for a given
// block size, so results do not change from run to run. blockDim.x must be a multiple of 32.
#pragma once
#include <cmath>
#include <cstdint>

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
