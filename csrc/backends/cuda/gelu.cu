// CUDA kernels of GELU, exact (erf) and tanh-approximated, with the formulas the CPU uses
// (kernels/gelu_math.h). bfloat16 data is computed in float32 and rounded once on the store.
#include "backends/cuda/device_types.cuh"
#include "backends/cuda/runtime.h"
#include "kernels/gelu_math.h"
#include "kernels/nn.h"

namespace cgad::cuda {

namespace {

template <typename S>
__global__ void gelu_forward_kernel_(const S* x, S* y, int64_t n, bool tanh_approx) {
  using T = ComputeT<S>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T v = load(x + i);
    store(y + i, tanh_approx ? math::gelu_tanh(v, std::tanh(math::gelu_tanh_arg(v))) : math::gelu_erf(v));
  }
}

template <typename S>
__global__ void gelu_backward_kernel_(const S* x, const S* g, S* dx, int64_t n, bool tanh_approx) {
  using T = ComputeT<S>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const T v = load(x + i);
    const T d = tanh_approx ? math::gelu_tanh_grad(v, std::tanh(math::gelu_tanh_arg(v))) : math::gelu_erf_grad(v);
    store(dx + i, load(g + i) * d);
  }
}

constexpr int kThreads = 256;

void forward(const Tensor& y, const Tensor& x, bool tanh_approx) {
  const int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard guard(x.device());
  dispatch_float<true>(x.dtype(), "gelu", [&](auto tag) {
    using S = DeviceT<typename decltype(tag)::type>;
    gelu_forward_kernel_<S><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream(x.device().index)>>>(
        static_cast<const S*>(x.raw_data()), static_cast<S*>(y.raw_data()), n, tanh_approx);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

void backward(const Tensor& dx, const Tensor& x, const Tensor& g, bool tanh_approx) {
  const int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard guard(x.device());
  dispatch_float<true>(x.dtype(), "gelu", [&](auto tag) {
    using S = DeviceT<typename decltype(tag)::type>;
    gelu_backward_kernel_<S><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream(x.device().index)>>>(
        static_cast<const S*>(x.raw_data()), static_cast<const S*>(g.raw_data()), static_cast<S*>(dx.raw_data()), n,
        tanh_approx);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

}  // namespace

CGAD_REGISTER_KERNEL(gelu_forward_kernel, CUDA, forward);
CGAD_REGISTER_KERNEL(gelu_backward_kernel, CUDA, backward);

}  // namespace cgad::cuda
