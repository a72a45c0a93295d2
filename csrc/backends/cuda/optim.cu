// CUDA kernels of Adam/AdamW and clip_grad_norm_, as multi-tensor launches (multi_tensor.cuh).
// Adam's per-element update is the CPU's function (kernels/adam_math.h). The grad norm is a
// deterministic two-level reduction (fixed chunks, fixed trees, no atomics) that stays on the
// device, and clip_scale reads it there: no host synchronization in a step.
#include <type_traits>
#include <vector>
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/multi_tensor.cuh"
#include "kernels/adam_math.h"
#include "kernels/elementwise_math.h"
#include "kernels/optim.h"

namespace cgad::cuda {

namespace {

using math::AdamDecay;

template <typename T>
struct AdamList {
  ChunkMap chunks;
  T* p[kListMax];
  const T* g[kListMax];
  T* m[kListMax];
  T* v[kListMax];
  math::AdamConsts<T> c[kListMax];
};

// The element range [begin, end) of tensor t that block b covers.
struct ChunkRange {
  int t;
  int64_t begin, end;
};

__device__ inline ChunkRange chunk_range(const ChunkMap& map, int64_t b) {
  const int t = map.find(b);
  const int64_t begin = (b - map.block_start[t]) * kChunk;
  return {t, begin, begin + kChunk < map.n[t] ? begin + kChunk : map.n[t]};
}

template <typename T, AdamDecay D>
__global__ void adam_step_kernel(AdamList<T> list) {
  const ChunkRange r = chunk_range(list.chunks, blockIdx.x);
  const math::AdamConsts<T> c = list.c[r.t];
  T* p = list.p[r.t];
  const T* g = list.g[r.t];
  T* m = list.m[r.t];
  T* v = list.v[r.t];
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) math::adam_update<T, D>(p[i], g[i], m[i], v[i], c);
}

template <typename T>
void adam_typed(const std::vector<const AdamSlot*>& slots, const AdamHyper& hp, Device dev) {
  const AdamDecay mode = hp.weight_decay == 0 ? AdamDecay::None : hp.decoupled ? AdamDecay::Decoupled : AdamDecay::L2;
  cudaStream_t s = stream(dev.index);
  auto fill = [&](AdamList<T>& l, const AdamSlot* slot) {
    const int k = l.chunks.count;
    if (!l.chunks.add(slot->param.numel())) return false;
    l.p[k] = slot->param.data<T>();
    l.g[k] = slot->grad.data<T>();
    l.m[k] = slot->exp_avg.data<T>();
    l.v[k] = slot->exp_avg_sq.data<T>();
    l.c[k] = math::adam_consts<T>(hp.lr, hp.beta1, hp.beta2, hp.eps, hp.weight_decay, slot->step);
    return true;
  };
  auto launch = [&](const AdamList<T>& l) {
    const int64_t blocks = l.chunks.blocks();
    if (blocks == 0) return;
    if (mode == AdamDecay::None) adam_step_kernel<T, AdamDecay::None><<<unsigned(blocks), kBlock, 0, s>>>(l);
    else if (mode == AdamDecay::Decoupled) adam_step_kernel<T, AdamDecay::Decoupled><<<unsigned(blocks), kBlock, 0, s>>>(l);
    else adam_step_kernel<T, AdamDecay::L2><<<unsigned(blocks), kBlock, 0, s>>>(l);
    CGAD_CUDA_CHECK_LAUNCH();
  };
  for_each_batch<AdamList<T>>(slots, fill, launch);
}

void adam(const std::vector<AdamSlot>& slots, const AdamHyper& hp) {
  if (slots.empty()) return;
  const Device dev = slots.front().param.device();
  DeviceGuard guard(dev);
  std::vector<const AdamSlot*> f32, f64;  // one launch type per dtype
  for (const AdamSlot& s : slots) {
    dispatch_float(s.param.dtype(), "Adam", [&](auto tag) {
      using T = typename decltype(tag)::type;
      (std::is_same_v<T, float> ? f32 : f64).push_back(&s);
    });
  }
  adam_typed<float>(f32, hp, dev);
  adam_typed<double>(f64, hp, dev);
}

template <typename T>
struct NormList {
  ChunkMap chunks;
  const T* x[kListMax];
  int index[kListMax];  // the tensor's position in the grads list
};

// Level 1: each block's sum of squares (in double) of its chunk into partials[b].
template <typename T>
__global__ void sum_squares_kernel(NormList<T> list, double* partials) {
  const ChunkRange r = chunk_range(list.chunks, blockIdx.x);
  const T* x = list.x[r.t];
  double s = 0;
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) s += double(x[i]) * double(x[i]);
  s = block_reduce_tree<kBlock>(s, SumOp{});
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// Level 2: block t adds tensor t's partials; its norm is rounded to float32, as torch's
// per-tensor norms are, and its square kept for the total.
template <typename T>
__global__ void tensor_norms_kernel(NormList<T> list, const double* partials, double* norm_sq) {
  const int t = blockIdx.x;
  double s = 0;
  for (int64_t b = list.chunks.block_start[t] + threadIdx.x; b < list.chunks.block_start[t + 1]; b += blockDim.x)
    s += partials[b];
  s = block_reduce_tree<kBlock>(s, SumOp{});
  if (threadIdx.x == 0) {
    const double n = double(float(sqrt(s)));
    norm_sq[list.index[t]] = n * n;
  }
}

// Level 3: norm = sqrt of the sum of the count per-tensor squares.
__global__ void total_norm_kernel(const double* norm_sq, int64_t count, float* norm) {
  double s = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += norm_sq[i];
  s = block_reduce_tree<kBlock>(s, SumOp{});
  if (threadIdx.x == 0) *norm = float(sqrt(s));
}

template <typename T>
void sum_squares_typed(const std::vector<std::pair<int, const Tensor*>>& grads, double* partials, double* norm_sq,
                       cudaStream_t s) {
  auto fill = [](NormList<T>& l, const std::pair<int, const Tensor*>& g) {
    const int k = l.chunks.count;
    if (!l.chunks.add(g.second->numel())) return false;
    l.x[k] = g.second->template data<T>();
    l.index[k] = g.first;
    return true;
  };
  auto launch = [&](const NormList<T>& l) {
    const int64_t blocks = l.chunks.blocks();
    if (blocks > 0) {
      sum_squares_kernel<T><<<unsigned(blocks), kBlock, 0, s>>>(l, partials);
      CGAD_CUDA_CHECK_LAUNCH();
    }
    tensor_norms_kernel<T><<<unsigned(l.chunks.count), kBlock, 0, s>>>(l, partials, norm_sq);
    CGAD_CUDA_CHECK_LAUNCH();
  };
  for_each_batch<NormList<T>>(grads, fill, launch);
}

void grad_norm(const Tensor& norm, const std::vector<Tensor>& grads) {
  const Device dev = norm.device();
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev.index);
  std::vector<std::pair<int, const Tensor*>> f32, f64;
  int64_t chunks = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    dispatch_float(grads[i].dtype(), "clip_grad_norm_", [&](auto tag) {
      using T = typename decltype(tag)::type;
      (std::is_same_v<T, float> ? f32 : f64).push_back({int(i), &grads[i]});
    });
    chunks += (grads[i].numel() + kChunk - 1) / kChunk;
  }
  // Level-1 partials: each batch reuses the buffer from its start, in stream order.
  Tensor partials = empty({std::max<int64_t>(chunks, 1)}, DType::Float64, dev);
  Tensor norm_sq = empty({std::max<int64_t>(int64_t(grads.size()), 1)}, DType::Float64, dev);  // per grad
  sum_squares_typed<float>(f32, partials.data<double>(), norm_sq.data<double>(), s);
  sum_squares_typed<double>(f64, partials.data<double>(), norm_sq.data<double>(), s);
  total_norm_kernel<<<1, kBlock, 0, s>>>(norm_sq.data<double>(), int64_t(grads.size()), norm.data<float>());
  CGAD_CUDA_CHECK_LAUNCH();
}

// torch's clip coefficient min(max_norm / (norm + 1e-6), 1) in float32, as the CPU kernel (a
// NaN norm gives a NaN coefficient, as std::min(NaN, 1) does).
__device__ inline float clip_coef(const float* norm, float max_norm) {
  const float q = max_norm / (*norm + 1e-6f);
  return 1.0f < q ? 1.0f : q;
}

template <typename T>
struct ScaleList {
  ChunkMap chunks;
  T* x[kListMax];
};

template <typename T>
__global__ void clip_kernel(ScaleList<T> list, const float* norm, float max_norm) {
  const float coef = clip_coef(norm, max_norm);
  if (coef == 1.0f) return;  // x * 1 == x: the CPU skips the pass
  const ChunkRange r = chunk_range(list.chunks, blockIdx.x);
  T* x = list.x[r.t];
  const auto v = math::scale_t<T>(double(coef));
  for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) x[i] = math::scale(x[i], v);
}

// A non-contiguous grad: the strided launcher, reading the coefficient on the device too.
template <typename T>
struct ClipStridedMap {
  T* x;
  const float* norm;
  float max_norm;
  __device__ void operator()(const Offsets<1>& o) const {
    const float coef = clip_coef(norm, max_norm);
    if (coef != 1.0f) x[o[0]] = math::scale(x[o[0]], math::scale_t<T>(double(coef)));
  }
};

void clip_scale(const std::vector<Tensor>& grads, const Tensor& norm, double max_norm) {
  const Device dev = norm.device();
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev.index);
  const float* pn = norm.data<float>();
  const float mx = float(max_norm);
  std::vector<const Tensor*> f32, f64, b16;
  for (const Tensor& g : grads) {
    dispatch_float<true>(g.dtype(), "mul_", [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (!g.is_contiguous()) {
        const auto calc = make_offset_calc<1>(g.shape(), {g.strides()});
        launch_strided(dev, g.numel(), calc, ClipStridedMap<T>{g.data<T>(), pn, mx});
        return;
      }
      (std::is_same_v<T, float> ? f32 : std::is_same_v<T, double> ? f64 : b16).push_back(&g);
    });
  }
  auto run = [&](auto tag, const std::vector<const Tensor*>& list) {
    using T = typename decltype(tag)::type;
    auto fill = [](ScaleList<T>& l, const Tensor* g) {
      const int k = l.chunks.count;
      if (!l.chunks.add(g->numel())) return false;
      l.x[k] = g->template data<T>();
      return true;
    };
    auto launch = [&](const ScaleList<T>& l) {
      if (l.chunks.blocks() == 0) return;
      clip_kernel<T><<<unsigned(l.chunks.blocks()), kBlock, 0, s>>>(l, pn, mx);
      CGAD_CUDA_CHECK_LAUNCH();
    };
    for_each_batch<ScaleList<T>>(list, fill, launch);
  };
  run(TypeTag<float>{}, f32);
  run(TypeTag<double>{}, f64);
  run(TypeTag<bf16>{}, b16);
}

}  // namespace

CGAD_REGISTER_KERNEL(adam_kernel, CUDA, adam);
CGAD_REGISTER_KERNEL(grad_norm_kernel, CUDA, grad_norm);
CGAD_REGISTER_KERNEL(clip_scale_kernel, CUDA, clip_scale);

}  // namespace cgad::cuda
