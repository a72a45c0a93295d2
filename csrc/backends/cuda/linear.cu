// linear_kernel: out (rows, out_f) = x (rows, in) @ w (out_f, in)^T + b through cuBLASLt, the
// bias added by the GEMM's epilogue before c's one rounding (what the CPU's bf16 GEMM does).
// Where cuBLASLt has no bias epilogue for the problem (float64, say), the bias rows seed c and
// the GEMM adds into them (beta = 1), as the CPU's float32/float64 path does.
#include <algorithm>
#include "backends/cuda/device_types.cuh"
#include "backends/cuda/gemm.cuh"
#include "backends/cuda/runtime.h"
#include "kernels/linalg.h"

namespace cgad::cuda {

namespace {

template <typename S>
__global__ void seed_rows_kernel(S* out, const S* bias, int64_t cols, int64_t total) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = bias[i % cols];
}

void seed_rows(int device, const Tensor& out, const Tensor& b) {
  const int64_t total = out.numel(), cols = out.size(1);
  constexpr int kThreads = 256;
  dispatch_float<true>(out.dtype(), "linear", [&](auto tag) {
    using S = DeviceT<typename decltype(tag)::type>;
    seed_rows_kernel<S><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream(device)>>>(
        static_cast<S*>(out.raw_data()), static_cast<const S*>(b.raw_data()), cols, total);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

void linear_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t rows = x.size(0), in_f = x.size(1), out_f = w.size(0);
  const int device = out.device().index;
  GemmArgs g;
  g.dtype = g.c_dtype = x.dtype();
  g.M = rows;
  g.N = out_f;
  g.K = in_f;
  g.a = x.raw_data();
  g.lda = std::max<int64_t>(in_f, 1);
  g.b = w.raw_data();
  g.trans_b = true;
  g.ldb = std::max<int64_t>(in_f, 1);
  g.c = out.raw_data();
  g.ldc = std::max<int64_t>(out_f, 1);
  if (b.defined()) {
    g.bias = b.raw_data();
    if (try_gemm(device, g)) return;
    g.bias = nullptr;
    DeviceGuard guard(device);
    seed_rows(device, out, b);
    g.beta = 1;
  }
  gemm(device, g);
}

}  // namespace

CGAD_REGISTER_KERNEL(linear_kernel, CUDA, linear_forward);

}  // namespace cgad::cuda
