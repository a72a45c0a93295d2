// CUDA kernels of scaled_dot_product_attention, llm.c's simple path: the products are batched
// cuBLASLt GEMMs over the (batch, head) dims and the softmax a fused row kernel, with the CPU
// kernels' contract (backends/cpu/attention.cpp, attention_bf16.cpp): the forward saves only
// each query's lse, the backward recomputes the probabilities from q, k and the lse; bfloat16
// runs its products in bf16 with float32 accumulation, scores and lse in float32. The (L, S) scores live in
// scratch tensors for the call (one in the forward, two in the backward); causal masking zeroes
// the probabilities of the keys a query cannot see (the GEMMs compute the whole square).
#include <algorithm>
#include <cmath>
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/device_types.cuh"
#include "backends/cuda/gemm.cuh"
#include "backends/cuda/runtime.h"
#include "core/error.h"
#include "kernels/attention.h"

namespace cgad::cuda {

namespace {

constexpr int kMaxDims = 8;

// Element offsets of a strided tensor's elements (or of its leading dims' matrices) in
// row-major index order, computed on the device.
struct StridedIndex {
  int nd = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxDims] = {};
  __device__ int64_t offset(int64_t i) const {
    int64_t off = 0;
    for (int d = nd - 1; d >= 0; --d) {
      off += i % size[d] * stride[d];
      i /= size[d];
    }
    return off;
  }
};

// The index of the first `ndims` dims of t: size-1 dims dropped, evenly stepping neighbours folded.
StridedIndex strided_index(const Tensor& t, size_t ndims) {
  StridedIndex ix;
  for (size_t d = 0; d < ndims; ++d) {
    const int64_t size = t.shape()[d], stride = t.strides()[d];
    if (size == 1) continue;
    if (ix.nd > 0 && ix.stride[ix.nd - 1] == stride * size) {
      ix.size[ix.nd - 1] *= size;
      ix.stride[ix.nd - 1] = stride;
      continue;
    }
    if (ix.nd == kMaxDims)
      throw ValueError(str("scaled_dot_product_attention: a tensor of shape ", shape_str(t.shape()), " has more than ",
                           kMaxDims, " dims that do not fold into one stride"));
    ix.size[ix.nd] = size;
    ix.stride[ix.nd] = stride;
    ++ix.nd;
  }
  return ix;
}

template <typename T>
__global__ void gather_kernel(const T* in, StridedIndex ix, T* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = in[ix.offset(i)];
}

// t (H.., R, C) in the GEMMs' BLAS form (kernels/linalg.h): as it is when its rows do not
// overlap; a single row gets a nominal row stride; rows that overlap (an expanded dim) are
// copied out. t is one of this call's inputs or outputs; outputs never need the copy.
Tensor blas_operand(const Tensor& t) {
  const size_t nd = size_t(t.dim());
  const int64_t R = t.size(-2), C = t.size(-1), rs = t.strides()[nd - 2];
  if (R <= 1) {
    Shape strides = t.strides();
    strides[nd - 2] = std::max<int64_t>(C, 1);
    return make_view(t, t.shape(), strides, t.impl()->offset);
  }
  if (rs >= std::max<int64_t>(C, 1)) return t;
  Tensor c = empty(t.shape(), t.dtype(), t.device());
  const StridedIndex ix = strided_index(t, nd);
  const int64_t n = t.numel();
  constexpr int kThreads = 256;
  dispatch_float<true>(t.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using S = DeviceT<typename decltype(tag)::type>;
    gather_kernel<S><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream(t.device().index)>>>(
        static_cast<const S*>(t.raw_data()), ix, static_cast<S*>(c.raw_data()), n);
  });
  CGAD_CUDA_CHECK_LAUNCH();
  return c;
}

// An (H.., L, S) scratch of `dtype` for the scores (or probabilities) of every (batch, head).
Tensor scores_like(const Tensor& q, const AttentionDims& d, DType dtype) {
  Shape shape(q.shape().begin(), q.shape().end() - 2);
  shape.push_back(d.L);
  shape.push_back(d.S);
  return empty(shape, dtype, q.device());
}

// Row r = h * L + i of s holds query i's raw scores (in T, the statistics type). p's row gets
// p_i = softmax(scale * s_i) over the keys the query sees (0 beyond them), stored as P (T itself,
// in place, or bfloat16, rounded once), and lse[r] = scale * max + log(sum).
template <typename T, typename P>
__global__ void __launch_bounds__(kMaxRowThreads) attention_softmax_kernel(const T* s, P* p, T* lse, int64_t rows,
                                                                           int64_t L, int64_t S, bool causal,
                                                                           T scale) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t i = r % L, n = causal ? (i + 1 < S ? i + 1 : S) : S;
    const T* sr = s + r * S;
    P* pr = p + r * S;
    T mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) mx = sr[j] > mx ? sr[j] : mx;
    const T smx = scale * block_max(mx);
    double l = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) l += double(T(std::exp(scale * sr[j] - smx)));
    l = block_sum(l);
    const T inv = T(1.0 / l);
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x)
      store(pr + j, j < n ? T(std::exp(scale * sr[j] - smx)) * inv : T(0));
    if (threadIdx.x == 0) lse[r] = smx + T(std::log(l));
  }
}

// Row r = h * L + i: s holds the raw scores and dp = do @ v^T (in T). p and ds get
// p_ij = exp(scale s_ij - lse_i) and ds_ij = scale p_ij (dp_ij - do_i . o_i), 0 beyond the keys
// the query sees, stored as P (T in place, or bfloat16 rounded once from the unrounded p_ij).
// g and out are of storage type D.
template <typename D, typename T, typename P>
__global__ void __launch_bounds__(kMaxRowThreads) attention_backward_rows_kernel(
    const T* s, const T* dp, P* p, P* ds, const T* lse, const D* g, StridedIndex g_heads, int64_t g_rs, const D* out,
    StridedIndex o_heads, int64_t o_rs, int64_t rows, int64_t L, int64_t S, int64_t Ev, bool causal, T scale) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t h = r / L, i = r % L, n = causal ? (i + 1 < S ? i + 1 : S) : S;
    const D* gi = g + g_heads.offset(h) + i * g_rs;
    const D* oi = out + o_heads.offset(h) + i * o_rs;
    T Di = 0;
    for (int64_t e = threadIdx.x; e < Ev; e += blockDim.x) Di += T(load(gi + e)) * T(load(oi + e));
    Di = block_sum(Di);
    const T li = lse[r];
    for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
      const int64_t at = r * S + j;
      if (j < n) {
        const T pj = T(std::exp(scale * s[at] - li));
        const T dsj = scale * pj * (dp[at] - Di);
        store(p + at, pj);
        store(ds + at, dsj);
      } else {
        store(p + at, T(0));
        store(ds + at, T(0));
      }
    }
  }
}

// bfloat16 attention keeps its scores and statistics in float32 and multiplies P and dS rounded
// to bfloat16 (the CPU's attention_bf16.cpp); float32/float64 run in their own type, in place.
template <typename D>
using ScoreT = ComputeT<D>;

void attention_forward(const Tensor& out_in, const Tensor& lse, const Tensor& q_in, const Tensor& k_in,
                       const Tensor& v_in, bool causal, double scale) {
  const AttentionDims d = attention_dims(q_in, k_in, v_in);
  if (d.H * d.L == 0) return;
  DeviceGuard guard(q_in.device());
  const Tensor q = blas_operand(q_in), k = blas_operand(k_in), v = blas_operand(v_in), out = blas_operand(out_in);
  const bool bf = q.dtype() == DType::BFloat16;
  Tensor s = scores_like(q, d, stats_dtype(q.dtype()));
  Tensor p = bf ? scores_like(q, d, DType::BFloat16) : s;
  gemm_tensors(s, q, false, k, true, 1.0, 0.0);  // s = q @ k^T
  const int64_t rows = d.H * d.L;
  dispatch_float<true>(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using D = DeviceT<typename decltype(tag)::type>;
    using T = ScoreT<D>;
    attention_softmax_kernel<T, D><<<row_blocks(rows), row_block_threads(d.S), 0, stream(q.device().index)>>>(
        s.data<T>(), static_cast<D*>(p.raw_data()), lse.data<T>(), rows, d.L, d.S, causal, T(scale));
  });
  CGAD_CUDA_CHECK_LAUNCH();
  gemm_tensors(out, p, false, v, false, 1.0, 0.0);  // out = p @ v
}

void attention_backward(const Tensor& dq_in, const Tensor& dk_in, const Tensor& dv_in, const Tensor& g_in,
                        const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& out_in,
                        const Tensor& lse, bool causal, double scale) {
  const AttentionDims d = attention_dims(q_in, k_in, v_in);
  DeviceGuard guard(q_in.device());
  const Tensor q = blas_operand(q_in), k = blas_operand(k_in), v = blas_operand(v_in), g = blas_operand(g_in),
               out = blas_operand(out_in);
  const Tensor dq = blas_operand(dq_in), dk = blas_operand(dk_in), dv = blas_operand(dv_in);
  const bool bf = q.dtype() == DType::BFloat16;
  const DType st = stats_dtype(q.dtype());
  Tensor s = scores_like(q, d, st), dp = scores_like(q, d, st);
  Tensor p = bf ? scores_like(q, d, DType::BFloat16) : s, ds = bf ? scores_like(q, d, DType::BFloat16) : dp;
  gemm_tensors(s, q, false, k, true, 1.0, 0.0);   // s = q @ k^T
  gemm_tensors(dp, g, false, v, true, 1.0, 0.0);  // dp = do @ v^T
  const int64_t rows = d.H * d.L;
  const size_t lead = size_t(q.dim() - 2);
  const int64_t g_rs = g.strides()[lead], o_rs = out.strides()[lead];
  dispatch_float<true>(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using D = DeviceT<typename decltype(tag)::type>;
    using T = ScoreT<D>;
    attention_backward_rows_kernel<D, T, D><<<row_blocks(rows), row_block_threads(std::max(d.S, d.Ev)), 0,
                                              stream(q.device().index)>>>(
        s.data<T>(), dp.data<T>(), static_cast<D*>(p.raw_data()), static_cast<D*>(ds.raw_data()), lse.data<T>(),
        static_cast<const D*>(g.raw_data()), strided_index(g, lead), g_rs, static_cast<const D*>(out.raw_data()),
        strided_index(out, lead), o_rs, rows, d.L, d.S, d.Ev, causal, T(scale));
  });
  CGAD_CUDA_CHECK_LAUNCH();
  gemm_tensors(dv, p, true, g, false, 1.0, 0.0);    // dv = p^T @ do
  gemm_tensors(dk, ds, true, q, false, 1.0, 0.0);   // dk = ds^T @ q
  gemm_tensors(dq, ds, false, k, false, 1.0, 0.0);  // dq = ds @ k
}

}  // namespace

CGAD_REGISTER_KERNEL(attention_forward_kernel, CUDA, attention_forward);
CGAD_REGISTER_KERNEL(attention_backward_kernel, CUDA, attention_backward);

}  // namespace cgad::cuda
