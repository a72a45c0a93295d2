// CUDA kernels of the sums and max reductions over the op's contiguous (rows, cols) layout:
// row sums, column sums, max/argmax per row and max's backward (topk is in topk.cu). Sums
// accumulate as the CPU's do (double for floating types, wrapping uint64 for integers) in
// fixed-shape trees, so results are the same on every run and match the CPU to float rounding
// of the summation order; max and argmax use the CPU's order (math::greater) and are exact.
#include <algorithm>
#include <type_traits>
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/launch.cuh"
#include "kernels/elementwise_math.h"
#include "kernels/reduce.h"

namespace cgad::cuda {

namespace {

// The CPU's accumulator: integer sums wrap around on overflow, as torch's do (unsigned: defined).
template <typename T>
using SumAcc = std::conditional_t<std::is_floating_point_v<T> || std::is_same_v<T, bf16>, double, uint64_t>;

// Columns one block of a long row covers before the row splits into parallel parts.
constexpr int64_t kSplitCols = 1 << 16;
constexpr int64_t kMaxSplits = 1024;

// Block (r, part) sums part `part` of row r's columns; with one part the row's sum goes straight
// to out, else to partials[r * parts + part] for row_finish_kernel.
template <typename T, typename Acc>
__global__ void row_sum_kernel(const T* x, int64_t ncols, int64_t parts, T* out, Acc* partials) {
  const int64_t r = blockIdx.x, part = blockIdx.y;
  const int64_t len = (ncols + parts - 1) / parts, b = part * len, e = b + len < ncols ? b + len : ncols;
  const T* row = x + r * ncols;
  Acc s = 0;
  for (int64_t c = b + threadIdx.x; c < e; c += blockDim.x) s += Acc(row[c]);
  s = block_reduce_tree<kBlock>(s, SumOp{});
  if (threadIdx.x != 0) return;
  if (parts == 1) out[r] = T(s);
  else partials[r * parts + part] = s;
}

template <typename T, typename Acc>
__global__ void row_finish_kernel(const Acc* partials, int64_t parts, T* out) {
  const int64_t r = blockIdx.x;
  Acc s = 0;
  for (int64_t p = threadIdx.x; p < parts; p += blockDim.x) s += partials[r * parts + p];
  s = block_reduce_tree<kBlock>(s, SumOp{});
  if (threadIdx.x == 0) out[r] = T(s);
}

// Short rows: a thread per row, summed in column order (the CPU's order).
template <typename T, typename Acc>
struct ShortRowSum {
  const T* x;
  int64_t ncols;
  T* out;
  __device__ void operator()(int64_t r) const {
    Acc s = 0;
    for (int64_t c = 0; c < ncols; ++c) s += Acc(x[r * ncols + c]);
    out[r] = T(s);
  }
};

template <typename T, typename Acc>
void sum_rows_typed(const Tensor& out, const Tensor& src, int64_t nrows, int64_t ncols) {
  const Device dev = src.device();
  const T* x = src.data<T>();
  T* o = out.data<T>();
  if (nrows == 0) return;
  if (ncols <= 32) return launch_flat(dev, nrows, ShortRowSum<T, Acc>{x, ncols, o});
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev.index);
  // Rows split only by their length, so the tree (and the result) depends on the shape alone.
  const int64_t parts = nrows >= 64 ? 1 : std::clamp<int64_t>(ncols / kSplitCols, 1, kMaxSplits);
  Tensor partials;
  Acc* pp = nullptr;
  if (parts > 1) {
    partials = empty({nrows * parts}, std::is_same_v<Acc, double> ? DType::Float64 : DType::Int64, dev);
    pp = static_cast<Acc*>(partials.raw_data());
  }
  row_sum_kernel<T, Acc><<<dim3(unsigned(nrows), unsigned(parts)), kBlock, 0, s>>>(x, ncols, parts, o, pp);
  CGAD_CUDA_CHECK_LAUNCH();
  if (parts > 1) {
    row_finish_kernel<T, Acc><<<unsigned(nrows), kBlock, 0, s>>>(pp, parts, o);
    CGAD_CUDA_CHECK_LAUNCH();
  }
}

void sum_rows(const Tensor& out, const Tensor& src, int64_t nrows, int64_t ncols) {
  dispatch_numeric(src.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    sum_rows_typed<T, SumAcc<T>>(out, src, nrows, ncols);
  });
}

// Rows of a column each part of a column sum covers.
constexpr int64_t kRowsPerPart = 256;
constexpr int64_t kMaxParts = 256;

// Thread (column c, part p) sums rows [p * len, (p + 1) * len) of column c in row order; with one
// part the sum goes to out, else to partials[p * cols + c] (coalesced across columns).
template <typename T, typename Acc>
__global__ void column_part_kernel(const T* x, int64_t rows, int64_t cols, int64_t parts, T* out, Acc* partials) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, p = blockIdx.y;
  if (c >= cols) return;
  const int64_t len = (rows + parts - 1) / parts, b = p * len, e = b + len < rows ? b + len : rows;
  Acc s = 0;
  for (int64_t r = b; r < e; ++r) s += Acc(x[r * cols + c]);
  if (parts == 1) out[c] = T(s);
  else partials[p * cols + c] = s;
}

// The parts of each column added in part order.
template <typename T, typename Acc>
struct ColumnFinish {
  const Acc* partials;
  int64_t cols, parts;
  T* out;
  __device__ void operator()(int64_t c) const {
    Acc s = 0;
    for (int64_t p = 0; p < parts; ++p) s += partials[p * cols + c];
    out[c] = T(s);
  }
};

void column_sums(const Tensor& out, const Tensor& src, int64_t rows, int64_t cols) {
  dispatch_numeric<true>(src.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = SumAcc<T>;
    if (cols == 0) return;
    const Device dev = src.device();
    DeviceGuard guard(dev);
    cudaStream_t s = stream(dev.index);
    // Long columns split into parts of about kRowsPerPart rows, so that a bias grad (16k rows,
    // under a thousand columns) still fills the GPU; the split depends on the shape alone.
    const int64_t parts = std::clamp<int64_t>(rows / kRowsPerPart, 1, kMaxParts);
    Tensor partials;
    Acc* pp = nullptr;
    if (parts > 1) {
      partials = empty({parts * cols}, std::is_same_v<Acc, double> ? DType::Float64 : DType::Int64, dev);
      pp = static_cast<Acc*>(partials.raw_data());
    }
    const dim3 grid(unsigned((cols + kBlock - 1) / kBlock), unsigned(parts));
    column_part_kernel<T, Acc><<<grid, kBlock, 0, s>>>(src.data<T>(), rows, cols, parts, out.data<T>(), pp);
    CGAD_CUDA_CHECK_LAUNCH();
    if (parts > 1) launch_flat(dev, cols, ColumnFinish<T, Acc>{pp, cols, parts, out.data<T>()});
  });
}

// One block per row: each thread keeps the best (value, index) of its columns, then a fixed
// tree picks the row's: the larger by math::greater, the lower index among equals (the CPU's
// first maximum).
template <typename T>
__global__ void row_max_kernel(const T* x, int64_t ncols, T* values, int64_t* indices) {
  __shared__ T sv[kBlock];
  __shared__ int64_t si[kBlock];
  const int64_t r = blockIdx.x;
  const T* row = x + r * ncols;
  const int t = int(threadIdx.x);
  int64_t best = -1;  // -1: this thread has no column
  T bv{};
  for (int64_t c = t; c < ncols; c += kBlock)
    if (best < 0 || math::greater(row[c], bv)) { best = c; bv = row[c]; }
  sv[t] = bv;
  si[t] = best;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (t < s) {
      const int64_t ib = si[t + s];
      const int64_t ia = si[t];
      if (ib >= 0 && (ia < 0 || math::greater(sv[t + s], sv[t]) || (!math::greater(sv[t], sv[t + s]) && ib < ia))) {
        sv[t] = sv[t + s];
        si[t] = ib;
      }
    }
    __syncthreads();
  }
  if (t == 0) {
    values[r] = sv[0];
    indices[r] = si[0];
  }
}

void max_rows(const Tensor& values, const Tensor& indices, const Tensor& src, int64_t nrows, int64_t ncols) {
  dispatch_numeric(src.dtype(), "max", [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (nrows == 0) return;
    const Device dev = src.device();
    DeviceGuard guard(dev);
    row_max_kernel<T><<<unsigned(nrows), kBlock, 0, stream(dev.index)>>>(src.data<T>(), ncols, values.data<T>(),
                                                                         indices.data<int64_t>());
    CGAD_CUDA_CHECK_LAUNCH();
  });
}

// grad_in (outer, n, inner), zeroed, gets g (outer, inner) at the argmax indices. An index
// outside [0, n) is skipped, never written outside the dim: max's forward produced these
// indices, so unlike the CPU this does not synchronize to raise for them.
template <typename T>
struct MaxBackwardFn {
  T* grad_in;
  const T* g;
  const int64_t* ix;
  int64_t n, inner;
  __device__ void operator()(int64_t j) const {
    const int64_t o = j / inner, i = j - o * inner, k = ix[j];
    if (k >= 0 && k < n) grad_in[(o * n + k) * inner + i] = g[j];
  }
};

void max_backward(const Tensor& grad_in, const Tensor& g, const Tensor& indices, int64_t outer, int64_t n,
                  int64_t inner) {
  dispatch_float(grad_in.dtype(), "max backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_flat(grad_in.device(), outer * inner,
                MaxBackwardFn<T>{grad_in.data<T>(), g.data<T>(), indices.data<int64_t>(), n, inner});
  });
}

}  // namespace

CGAD_REGISTER_KERNEL(sum_rows_kernel, CUDA, sum_rows);
CGAD_REGISTER_KERNEL(column_sums_kernel, CUDA, column_sums);
CGAD_REGISTER_KERNEL(max_rows_kernel, CUDA, max_rows);
CGAD_REGISTER_KERNEL(max_backward_kernel, CUDA, max_backward);

}  // namespace cgad::cuda
