// CUDA kernels of layer_norm with the CPU kernels' arithmetic (backends/cpu/layer_norm.cpp): the
// row statistics summed in double and rounded to T once, the forward saving mean and rstd. The
// backward's dx is one block per row; dw and db are column sums over the rows, taken in two
// fixed-order passes (blocks of rows into partials, then the partials in order), so they are
// deterministic without atomics.
#include <algorithm>
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/runtime.h"
#include "kernels/nn.h"

namespace cgad::cuda {

namespace {

template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    layer_norm_forward_kernel_(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t N, int64_t C,
        double eps) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    double m = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) m += double(xr[j]);
    m = block_sum(m) / double(C);
    double v = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const double d = double(xr[j]) - m;
      v += d * d;
    }
    v = block_sum(v) / double(C);  // biased variance, as torch
    const T mt = T(m), rs = T(1.0 / std::sqrt(v + eps));
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      T n = (xr[j] - mt) * rs;
      if (w) n *= w[j];
      if (b) n += b[j];
      yr[j] = n;
    }
    if (threadIdx.x == 0) {
      mean[r] = mt;
      rstd[r] = rs;
    }
  }
}

// dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)), dn = g * w (w = 1 when undefined).
template <typename T>
__global__ void __launch_bounds__(kMaxRowThreads)
    layer_norm_dx_kernel(const T* g, const T* x, const T* w, const T* mean, const T* rstd, T* dx, int64_t N,
        int64_t C) {
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const T* gr = g + r * C;
    const T* xr = x + r * C;
    const T mt = mean[r], rs = rstd[r];
    double s1 = 0, s2 = 0;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const T xhat = (xr[j] - mt) * rs;
      const T dn = gr[j] * (w ? w[j] : T(1));
      s1 += double(dn);
      s2 += double(dn) * double(xhat);
    }
    const T m1 = T(block_sum(s1) / double(C)), m2 = T(block_sum(s2) / double(C));
    T* dr = dx + r * C;
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x) {
      const T xhat = (xr[j] - mt) * rs;
      dr[j] = rs * (gr[j] * (w ? w[j] : T(1)) - m1 - xhat * m2);
    }
  }
}

constexpr int kColTile = 32;    // columns per block (one warp wide)
constexpr int kRowThreads = 8;  // rows walked at once in a block

// Rows per partial: 256, or more where that would need more chunks than a grid's y dimension holds.
int64_t rows_per_chunk(int64_t N) { return std::max<int64_t>(256, (N + 65534) / 65535); }

// Partial column sums of g * xhat and g over one chunk of rows: part (chunks, 2, C), in double.
template <typename T>
__global__ void layer_norm_dwdb_partial_kernel(const T* g, const T* x, const T* mean, const T* rstd, double* part,
                                               int64_t N, int64_t C, int64_t chunk_rows) {
  __shared__ double sw[kRowThreads][kColTile], sb[kRowThreads][kColTile];
  const int64_t j = int64_t(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * chunk_rows, r1 = r0 + chunk_rows < N ? r0 + chunk_rows : N;
  double pw = 0, pb = 0;
  if (j < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowThreads) {
      const T xhat = (x[r * C + j] - mean[r]) * rstd[r];
      pw += double(g[r * C + j]) * double(xhat);
      pb += double(g[r * C + j]);
    }
  }
  sw[threadIdx.y][threadIdx.x] = pw;
  sb[threadIdx.y][threadIdx.x] = pb;
  __syncthreads();
  if (threadIdx.y == 0 && j < C) {
    for (int t = 1; t < kRowThreads; ++t) {
      pw += sw[t][threadIdx.x];
      pb += sb[t][threadIdx.x];
    }
    part[(int64_t(blockIdx.y) * 2) * C + j] = pw;
    part[(int64_t(blockIdx.y) * 2 + 1) * C + j] = pb;
  }
}

template <typename T>
__global__ void layer_norm_dwdb_final_kernel(const double* part, int64_t chunks, T* dw, T* db, int64_t C) {
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < C; j += int64_t(gridDim.x) * blockDim.x) {
    double sw = 0, sb = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      sw += part[(c * 2) * C + j];
      sb += part[(c * 2 + 1) * C + j];
    }
    if (dw) dw[j] = T(sw);
    if (db) db[j] = T(sb);
  }
}

void forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x, const Tensor& w,
             const Tensor& b, int64_t N, int64_t C, double eps) {
  if (N == 0) return;
  DeviceGuard guard(x.device());
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    layer_norm_forward_kernel_<T><<<row_blocks(N), row_block_threads(C), 0, stream(x.device().index)>>>(
        x.data<T>(), w.data_or_null<T>(), b.data_or_null<T>(), y.data<T>(), mean.data<T>(), rstd.data<T>(), N, C, eps);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

void backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& g, const Tensor& x,
              const Tensor& w, const Tensor& mean, const Tensor& rstd, int64_t N, int64_t C) {
  DeviceGuard guard(x.device());
  cudaStream_t s = stream(x.device().index);
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (dx.defined() && N > 0 && C > 0) {
      layer_norm_dx_kernel<T><<<row_blocks(N), row_block_threads(C), 0, s>>>(
          g.data<T>(), x.data<T>(), w.data_or_null<T>(), mean.data<T>(), rstd.data<T>(), dx.data<T>(), N, C);
      CGAD_CUDA_CHECK_LAUNCH();
    }
    if ((dw.defined() || db.defined()) && C > 0) {
      const int64_t chunk_rows = rows_per_chunk(N), chunks = (N + chunk_rows - 1) / chunk_rows;
      Tensor part = empty({std::max<int64_t>(chunks, 1), 2, C}, DType::Float64, x.device());
      if (chunks > 0) {
        const dim3 grid(unsigned((C + kColTile - 1) / kColTile), unsigned(chunks)), block(kColTile, kRowThreads);
        layer_norm_dwdb_partial_kernel<T><<<grid, block, 0, s>>>(g.data<T>(), x.data<T>(), mean.data<T>(),
                                                                 rstd.data<T>(), part.data<double>(), N, C,
                                                                 chunk_rows);
        CGAD_CUDA_CHECK_LAUNCH();
      }
      constexpr int kThreads = 256;
      layer_norm_dwdb_final_kernel<T><<<unsigned((C + kThreads - 1) / kThreads), kThreads, 0, s>>>(
          part.data<double>(), chunks, dw.data_or_null<T>(), db.data_or_null<T>(), C);
      CGAD_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace

CGAD_REGISTER_KERNEL(layer_norm_forward_kernel, CUDA, forward);
CGAD_REGISTER_KERNEL(layer_norm_backward_kernel, CUDA, backward);

}  // namespace cgad::cuda
