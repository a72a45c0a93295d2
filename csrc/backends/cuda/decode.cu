// CUDA kernels of GPT-2's one-position decode step (kernels/decode.h), composed from the
// backend's own kernels: layer_norm, the cuBLASLt linear (a GEMM with M = B rows, bound by
// reading the weights as the CPU's GEMVs are) and GELU, called through their stubs on views of
// the caller's `work`, plus one fused kernel that appends the new key and value to the caches
// and attends over positions 0..pos. The arithmetic is the CPU decode's (backends/cpu/decode.cpp)
// up to summation order.
#include <cmath>
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/device_types.cuh"
#include "backends/cuda/runtime.h"
#include "core/error.h"
#include "kernels/decode.h"
#include "kernels/linalg.h"
#include "kernels/nn.h"

namespace cgad::cuda {

namespace {

constexpr int kThreads = 256;

// One block: *first_bad = the first b whose id is outside [0, V), B when none is.
__global__ void first_bad_id_kernel(const int64_t* ids, int64_t B, int64_t V, int64_t* first_bad) {
  int64_t bad = B;
  for (int64_t b = threadIdx.x; b < B; b += blockDim.x)
    if (ids[b] < 0 || ids[b] >= V) bad = b < bad ? b : bad;
  bad = block_reduce(bad, MinOp{}, B);
  if (threadIdx.x == 0) *first_bad = bad;
}

template <typename T>
__global__ void embed_kernel(T* x, const int64_t* ids, const T* wte, const T* wpe_row, int64_t B, int64_t C) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < B * C; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / C, j = i % C;
    x[i] = wte[ids[b] * C + j] + wpe_row[j];
  }
}

template <typename T>
__global__ void add_kernel(T* x, const T* v, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] += v[i];
}

// Block (b, h) = blockIdx.x: store the new key and value of head h at pos, then
// y = softmax(q . K^T * scale) @ V over positions 0..pos. qkv (B, 3C); caches (B, NH, S, HS);
// scores (B, NH, S); y (B, C) with heads side by side.
template <typename T>
__global__ void attend_kernel(const T* qkv, T* kc, T* vc, T* scores, T* y, int64_t NH, int64_t C, int64_t S,
                              int64_t pos) {
  const int64_t row = blockIdx.x, b = row / NH, h = row % NH, HS = C / NH;
  const T scale = T(1.0 / std::sqrt(double(HS)));
  const T* q = qkv + b * 3 * C + h * HS;
  T* K = kc + row * S * HS;
  T* V = vc + row * S * HS;
  for (int64_t e = threadIdx.x; e < HS; e += blockDim.x) {
    K[pos * HS + e] = q[C + e];
    V[pos * HS + e] = q[2 * C + e];
  }
  __syncthreads();  // the new key and value are read below by other threads of the block
  T* s = scores + row * S;
  T m = -INFINITY;
  for (int64_t t = threadIdx.x; t <= pos; t += blockDim.x) {
    const T* kt = K + t * HS;
    T d = 0;
    for (int64_t e = 0; e < HS; ++e) d += q[e] * kt[e];
    s[t] = d * scale;
    m = s[t] > m ? s[t] : m;
  }
  m = block_max(m);
  T sum = 0;
  for (int64_t t = threadIdx.x; t <= pos; t += blockDim.x) {
    s[t] = std::exp(s[t] - m);
    sum += s[t];
  }
  const T inv = T(1) / block_sum(sum);  // block_sum's barrier also publishes s to the block
  T* yo = y + b * C + h * HS;
  for (int64_t e = threadIdx.x; e < HS; e += blockDim.x) {
    T acc = 0;
    for (int64_t t = 0; t <= pos; ++t) acc += s[t] * V[t * HS + e];
    yo[e] = acc * inv;
  }
}

// A (rows, cols) contiguous view of `work` starting `offset` elements into it.
Tensor work_view(const Tensor& work, int64_t offset, int64_t rows, int64_t cols) {
  return make_view(work, {rows, cols}, {cols, 1}, work.impl()->offset + offset);
}

// y = layer_norm(x; w, b), its statistics discarded.
void layer_norm_into(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t B = x.size(0), C = x.size(1);
  Tensor mean = empty({B}, x.dtype(), x.device()), rstd = empty({B}, x.dtype(), x.device());
  layer_norm_forward_kernel()(x.device(), y, mean, rstd, x, w, b, B, C, eps);
}

void add_into(const Tensor& x, const Tensor& v) {
  const int64_t n = x.numel();
  dispatch_float(x.dtype(), "decode_block_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    add_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream(x.device().index)>>>(x.data<T>(),
                                                                                             v.data<T>(), n);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

void embed(const Tensor& x, const Tensor& ids, const Tensor& wte, const Tensor& wpe, int64_t pos) {
  const int64_t B = x.size(0), C = x.size(1), Vocab = wte.size(0);
  DeviceGuard guard(x.device());
  cudaStream_t s = stream(x.device().index);
  // An id out of range is IndexError before anything is written, so the check's answer is read
  // back here (generation reads every step's logits anyway).
  Tensor first_bad = empty({1}, DType::Int64, x.device());
  const int64_t* id = ids.data<int64_t>();
  first_bad_id_kernel<<<1, kThreads, 0, s>>>(id, B, Vocab, first_bad.data<int64_t>());
  CGAD_CUDA_CHECK_LAUNCH();
  int64_t bad = B;
  CGAD_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad.data<int64_t>(), sizeof(bad), cudaMemcpyDeviceToHost, s));
  CGAD_CUDA_CHECK(cudaStreamSynchronize(s));
  if (bad < B) {
    int64_t value = 0;
    CGAD_CUDA_CHECK(cudaMemcpyAsync(&value, id + bad, sizeof(value), cudaMemcpyDeviceToHost, s));
    CGAD_CUDA_CHECK(cudaStreamSynchronize(s));
    throw IndexError(str("decode_embed_: index ", value, " is out of range for a table of ", Vocab, " rows"));
  }
  dispatch_float(x.dtype(), "decode_embed_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    embed_kernel<T><<<grid_stride_blocks(B * C, kThreads), kThreads, 0, s>>>(x.data<T>(), id, wte.data<T>(),
                                                                             wpe.data<T>() + pos * C, B, C);
  });
  CGAD_CUDA_CHECK_LAUNCH();
}

// The work layout of kernels/decode.h: qkv (B, 3C), y (B, C), hid (B, 4C), scores (B, NH, S),
// then the layer_norm output (B, C) (one slot: the GPU needs no per-thread copies). The MLP's
// c_proj output reuses y, attention's c_proj output reuses hid: both are free by then.
// The CPU's decode kernels also take bf16 copies of the weight matrices beside a float32 x;
// these take weights of x's dtype only (generate gives them no other), and say so otherwise.
void check_weight_dtype(const Tensor& x, const Tensor& w, const char* op) {
  if (w.dtype() != x.dtype())
    throw TypeError(str(op, ": the CUDA kernel takes weights of x's dtype (", dtype_name(x.dtype()), "), got ",
                        dtype_name(w.dtype())));
}

void block(const Tensor& x, const DecodeBlockWeights& w, const Tensor& k_cache, const Tensor& v_cache, int64_t pos,
           int64_t n_head, double eps, const Tensor& work) {
  for (const Tensor* m : {&w.attn_w, &w.attn_proj_w, &w.fc_w, &w.mlp_proj_w})
    check_weight_dtype(x, *m, "decode_block");
  const int64_t B = x.size(0), C = x.size(1), S = k_cache.size(2);
  const Device dev = x.device();
  DeviceGuard guard(dev);
  const Tensor qkv = work_view(work, 0, B, 3 * C), y = work_view(work, 3 * B * C, B, C),
               hid = work_view(work, 4 * B * C, B, 4 * C), attn_out = work_view(work, 4 * B * C, B, C),
               scores = work_view(work, 8 * B * C, B * n_head, S),
               ln = work_view(work, decode_work_numel(B, C, n_head, S, 0), B, C);
  layer_norm_into(ln, x, w.ln1_w, w.ln1_b, eps);
  linear_kernel()(dev, qkv, ln, w.attn_w, w.attn_b);
  dispatch_float(x.dtype(), "decode_block_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    attend_kernel<T><<<unsigned(B * n_head), kThreads, 0, stream(dev.index)>>>(
        qkv.data<T>(), k_cache.data<T>(), v_cache.data<T>(), scores.data<T>(), y.data<T>(), n_head, C, S, pos);
  });
  CGAD_CUDA_CHECK_LAUNCH();
  linear_kernel()(dev, attn_out, y, w.attn_proj_w, w.attn_proj_b);
  add_into(x, attn_out);
  layer_norm_into(ln, x, w.ln2_w, w.ln2_b, eps);
  linear_kernel()(dev, hid, ln, w.fc_w, w.fc_b);
  gelu_forward_kernel()(dev, hid, hid, true);  // GPT-2's tanh GELU, in place
  linear_kernel()(dev, y, hid, w.mlp_proj_w, w.mlp_proj_b);
  add_into(x, y);
}

void logits(const Tensor& out, const Tensor& x, const Tensor& ln_w, const Tensor& ln_b, const Tensor& wte,
            double eps, const Tensor& work) {
  check_weight_dtype(x, wte, "decode_logits");
  const int64_t B = x.size(0), C = x.size(1);
  DeviceGuard guard(x.device());
  const Tensor ln = work_view(work, 0, B, C);
  layer_norm_into(ln, x, ln_w, ln_b, eps);
  linear_kernel()(x.device(), out, ln, wte, Tensor());
}

}  // namespace

CGAD_REGISTER_KERNEL(decode_embed_kernel, CUDA, embed);
CGAD_REGISTER_KERNEL(decode_block_kernel, CUDA, block);
CGAD_REGISTER_KERNEL(decode_logits_kernel, CUDA, logits);

}  // namespace cgad::cuda
