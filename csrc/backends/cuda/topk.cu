// CUDA kernel of topk over the rows of the op's contiguous (nrows, n) layout. The CPU's order is
// total (larger by math::greater first, then the lower index), so the k largest are one exact
// answer: a block per row selects them one at a time, each round the best element ranked after
// the previous round's pick. k rounds over the row: fast for the small k of top-k sampling; a k
// near n costs O(k n) per row.
#include "backends/cuda/launch.cuh"
#include "kernels/elementwise_math.h"
#include "kernels/reduce.h"

namespace cgad::cuda {

namespace {

// Whether (va, ia) comes before (vb, ib) in topk's output.
template <typename T>
__device__ bool ranks_before(T va, int64_t ia, T vb, int64_t ib) {
  return math::greater(va, vb) || (!math::greater(vb, va) && ia < ib);
}

template <typename T>
__global__ void topk_kernel(const T* x, int64_t n, int64_t k, T* values, int64_t* indices) {
  __shared__ T sv[kBlock];
  __shared__ int64_t si[kBlock];
  const int64_t r = blockIdx.x;
  const T* row = x + r * n;
  const int t = int(threadIdx.x);
  T prev_v{};
  int64_t prev_i = -1;  // -1: no pick yet
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    T bv{};
    for (int64_t c = t; c < n; c += kBlock) {
      const T v = row[c];
      if ((prev_i < 0 || ranks_before(prev_v, prev_i, v, c)) && (best < 0 || ranks_before(v, c, bv, best))) {
        best = c;
        bv = v;
      }
    }
    sv[t] = bv;
    si[t] = best;
    __syncthreads();
    for (int s = kBlock / 2; s > 0; s >>= 1) {
      if (t < s && si[t + s] >= 0 && (si[t] < 0 || ranks_before(sv[t + s], si[t + s], sv[t], si[t]))) {
        sv[t] = sv[t + s];
        si[t] = si[t + s];
      }
      __syncthreads();
    }
    prev_v = sv[0];
    prev_i = si[0];
    if (t == 0) {
      values[r * k + j] = prev_v;
      indices[r * k + j] = prev_i;
    }
    __syncthreads();  // sv and si are rewritten next round
  }
}

void topk_rows(const Tensor& values, const Tensor& indices, const Tensor& src, int64_t nrows, int64_t n, int64_t k) {
  dispatch_numeric(src.dtype(), "topk", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (nrows == 0 || k == 0) return;
    const Device dev = src.device();
    DeviceGuard guard(dev);
    topk_kernel<T><<<unsigned(nrows), kBlock, 0, stream(dev.index)>>>(src.data<T>(), n, k, values.data<T>(),
                                                                      indices.data<int64_t>());
    CGAD_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

CGAD_REGISTER_KERNEL(topk_rows_kernel, CUDA, topk_rows);

}  // namespace cgad::cuda
