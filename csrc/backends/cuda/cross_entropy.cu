// CUDA kernels of cross_entropy with the CPU kernels' contract (backends/cpu/cross_entropy.cpp):
// lse per kept row (0 on ignored rows), the loss the mean of the kept rows' nll summed in row
// order in double, NaN when every target is ignored; the backward (softmax - onehot) * g / count
// formed from the saved lse, possibly into the logits' own buffer. bfloat16 logits are read as
// they are, with lse, the loss and the arithmetic in float32 and the grad written in bf16.
//
// The forward must raise IndexError for a bad target before writing anything, so it reads one
// small summary of the targets back to the host (the only synchronization of these kernels).
// The backward recounts the kept targets on the device instead, and synchronizes nothing.
#include <cmath>
#include <cstdint>
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/device_types.cuh"
#include "backends/cuda/runtime.h"
#include "core/error.h"
#include "kernels/nn.h"

namespace cgad::cuda {

namespace {

constexpr int kSummaryThreads = kMaxRowThreads;  // one block over all the targets

// One block: summary[0] = the number of kept targets, summary[1] = the first row whose target is
// neither ignore_index nor in [0, V) (N when there is none).
__global__ void __launch_bounds__(kMaxRowThreads)
    target_summary_kernel(const int64_t* targets, int64_t N, int64_t V, int64_t ignore_index, int64_t* summary) {
  int64_t count = 0, first_bad = N;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index) continue;
    if (t < 0 || t >= V) first_bad = r < first_bad ? r : first_bad;
    else ++count;
  }
  count = block_sum(count);
  first_bad = block_reduce(first_bad, MinOp{}, N);
  if (threadIdx.x == 0) {
    summary[0] = count;
    summary[1] = first_bad;
  }
}

// Per row: lse[r] = max + log(sum exp(x - max)) and nll[r] = lse - x[t]; 0 and 0 when ignored.
// Logits of storage type S are computed in T = ComputeT<S>, the statistics dtype (float32 for
// bfloat16 logits), as the CPU kernel does.
template <typename S, typename T = ComputeT<S>>
__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_rows_kernel(const S* x, const int64_t* targets, T* lse, double* nll, int64_t N, int64_t V,
        int64_t ignore_index) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int64_t t = targets[r];
    if (t == ignore_index) {
      if (threadIdx.x == 0) {
        lse[r] = T(0);
        nll[r] = 0;
      }
      continue;
    }
    const S* xr = x + r * V;
    T mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      const T v = load(xr + j);
      mx = v > mx ? v : mx;
    }
    mx = block_max(mx);
    double s = 0;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += double(T(std::exp(load(xr + j) - mx)));
    s = block_sum(s);
    if (threadIdx.x == 0) {
      const double l = double(mx) + std::log(s);
      lse[r] = T(l);
      nll[r] = l - double(load(xr + t));
    }
  }
}

// One block: loss = sum(nll) / count, the sum in a fixed order.
template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_loss_kernel(const double* nll, int64_t N, double count, T* loss) {
  double s = 0;
  for (int64_t r = threadIdx.x; r < N; r += blockDim.x) s += nll[r];
  s = block_sum(s);
  if (threadIdx.x == 0) loss[0] = T(count > 0 ? s / count : NAN);
}

// dx = exp(x - lse) * g / count, minus g / count at the target (in T, one rounding to S at the
// store, as the CPU); 0 on ignored rows. Each element is read before it is
// written, so dx may be the logits' buffer.
template <typename S, typename T = ComputeT<S>>
__global__ void __launch_bounds__(kMaxRowThreads)
    cross_entropy_backward_kernel_(S* dx, const S* x, const T* lse, const int64_t* targets, const double* g,
        const int64_t* summary, int64_t N, int64_t V, int64_t ignore_index) {
  const T s = T(g[0] / double(summary[0]));
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int64_t t = targets[r];
    S* dr = dx + r * V;
    if (t == ignore_index) {
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) store(dr + j, T(0));
      continue;
    }
    const S* xr = x + r * V;
    const T l = lse[r];
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      T v = T(std::exp(load(xr + j) - l)) * s;
      if (j == t) v -= s;
      store(dr + j, v);
    }
  }
}

void forward(const Tensor& loss, const Tensor& lse_out, const Tensor& logits, const Tensor& targets,
             int64_t ignore_index) {
  const int64_t N = targets.numel(), V = logits.shape().back();
  const int device = logits.device().index;
  DeviceGuard guard(logits.device());
  cudaStream_t s = stream(device);
  Tensor summary = empty({2}, DType::Int64, logits.device());
  const int64_t* tg = targets.data<int64_t>();
  target_summary_kernel<<<1, kSummaryThreads, 0, s>>>(tg, N, V, ignore_index, summary.data<int64_t>());
  CGAD_CUDA_CHECK_LAUNCH();
  int64_t host[2] = {0, 0};
  CGAD_CUDA_CHECK(cudaMemcpyAsync(host, summary.data<int64_t>(), sizeof(host), cudaMemcpyDeviceToHost, s));
  CGAD_CUDA_CHECK(cudaStreamSynchronize(s));
  if (host[1] < N) {
    int64_t bad = 0;
    CGAD_CUDA_CHECK(cudaMemcpyAsync(&bad, tg + host[1], sizeof(bad), cudaMemcpyDeviceToHost, s));
    CGAD_CUDA_CHECK(cudaStreamSynchronize(s));
    throw IndexError(str("cross_entropy: target ", bad, " is out of range for ", V, " classes (logits ",
                         shape_str(logits.shape()), ")"));
  }
  Tensor nll = empty({N}, DType::Float64, logits.device());
  dispatch_float<true>(logits.dtype(), "cross_entropy", [&](auto tag) {
    using S = DeviceT<typename decltype(tag)::type>;
    using T = ComputeT<S>;  // lse and the loss are in stats_dtype
    if (N > 0) {
      cross_entropy_rows_kernel<S><<<row_blocks(N), row_block_threads(V), 0, s>>>(
          static_cast<const S*>(logits.raw_data()), tg, lse_out.data<T>(), nll.data<double>(), N, V, ignore_index);
      CGAD_CUDA_CHECK_LAUNCH();
    }
    cross_entropy_loss_kernel<T><<<1, kSummaryThreads, 0, s>>>(nll.data<double>(), N, double(host[0]),
                                                                loss.data<T>());
    CGAD_CUDA_CHECK_LAUNCH();
  });
}

void backward(const Tensor& dx, const Tensor& logits, const Tensor& lse, const Tensor& targets, const Tensor& g,
              int64_t ignore_index) {
  const int64_t N = targets.numel(), V = logits.shape().back();
  if (N == 0) return;
  DeviceGuard guard(logits.device());
  cudaStream_t s = stream(logits.device().index);
  Tensor summary = empty({2}, DType::Int64, logits.device());
  const int64_t* tg = targets.data<int64_t>();
  target_summary_kernel<<<1, kSummaryThreads, 0, s>>>(tg, N, V, ignore_index, summary.data<int64_t>());
  CGAD_CUDA_CHECK_LAUNCH();
  dispatch_float<true>(logits.dtype(), "cross_entropy", [&](auto tag) {
    using S = DeviceT<typename decltype(tag)::type>;
    cross_entropy_backward_kernel_<S><<<row_blocks(N), row_block_threads(V), 0, s>>>(
        static_cast<S*>(dx.raw_data()), static_cast<const S*>(logits.raw_data()), lse.data<ComputeT<S>>(), tg,
        g.data<double>(), summary.data<int64_t>(), N, V, ignore_index);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

}  // namespace

CGAD_REGISTER_KERNEL(cross_entropy_forward_kernel, CUDA, forward);
CGAD_REGISTER_KERNEL(cross_entropy_backward_kernel, CUDA, backward);

}  // namespace cgad::cuda
