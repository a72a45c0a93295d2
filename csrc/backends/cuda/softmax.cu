// CUDA kernels of softmax and log_softmax over contiguous rows, one block per row, with the CPU
// kernels' arithmetic: the row max subtracted first, the sums in double, each value in T.
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/device_types.cuh"
#include "backends/cuda/runtime.h"
#include "kernels/nn.h"

namespace cgad::cuda {

namespace {

template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    softmax_forward_kernel_(const T* x, T* y, int64_t N, int64_t C, bool log) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    T mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) mx = xr[j] > mx ? xr[j] : mx;
    mx = block_max(mx);
    if (mx == T(-INFINITY)) mx = 0;  // an all -inf row gives NaN as torch (0/0), not a max of -inf
    double s = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += double(T(std::exp(xr[j] - mx)));
    s = block_sum(s);
    if (log) {
      const T lse = T(std::log(s));
      for (int64_t j = threadIdx.x; j < C; j += blockDim.x) yr[j] = xr[j] - mx - lse;
    } else {
      const T inv = T(1.0 / s);
      for (int64_t j = threadIdx.x; j < C; j += blockDim.x) yr[j] = T(std::exp(xr[j] - mx)) * inv;
    }
  }
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    softmax_backward_kernel_(const T* g, const T* y, T* dx, int64_t N, int64_t C, bool log) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* gr = g + r * C;
    const T* yr = y + r * C;
    T* dr = dx + r * C;
    double s = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) s += log ? double(gr[j]) : double(gr[j]) * double(yr[j]);
    const T st = T(block_sum(s));
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
      dr[j] = log ? gr[j] - T(std::exp(yr[j])) * st : yr[j] * (gr[j] - st);
  }
}

void forward(const Tensor& y, const Tensor& x, int64_t N, int64_t C, bool log) {
  if (N == 0 || C == 0) return;
  DeviceGuard guard(x.device());
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_forward_kernel_<T><<<row_blocks(N), row_block_threads(C), 0, stream(x.device().index)>>>(
        x.data<T>(), y.data<T>(), N, C, log);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

void backward(const Tensor& dx, const Tensor& g, const Tensor& y, int64_t N, int64_t C, bool log) {
  if (N == 0 || C == 0) return;
  DeviceGuard guard(y.device());
  dispatch_float(y.dtype(), log ? "LogSoftmaxBackward" : "SoftmaxBackward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_backward_kernel_<T><<<row_blocks(N), row_block_threads(C), 0, stream(y.device().index)>>>(
        g.data<T>(), y.data<T>(), dx.data<T>(), N, C, log);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

}  // namespace

CGAD_REGISTER_KERNEL(softmax_forward_kernel, CUDA, forward);
CGAD_REGISTER_KERNEL(softmax_backward_kernel, CUDA, backward);

}  // namespace cgad::cuda
