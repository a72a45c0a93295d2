// CUDA kernels of the random ops: randn, rand, dropout's mask and multinomial. Each element is
// the CPU's function of (seed, counter) (kernels/random_math.h, Philox from core/rng.h, all
// CGAD_HD), so a seeded draw gives the CPU's numbers on the GPU.
#include <type_traits>
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/launch.cuh"
#include "kernels/creation.h"
#include "kernels/nn.h"
#include "kernels/random_math.h"

namespace cgad::cuda {

namespace {

// Pair i fills elements 2i and 2i + 1 from counter base + i.
template <typename T>
struct RandnFn {
  T* p;
  int64_t n;
  uint64_t seed, base;
  __device__ void operator()(int64_t i) const {
    const math::NormalPair z = math::normal_pair(seed, base + uint64_t(i));
    p[2 * i] = T(z.z0);
    if (2 * i + 1 < n) p[2 * i + 1] = T(z.z1);
  }
};

template <typename T>
struct RandFn {
  T* p;
  uint64_t seed, base;
  __device__ void operator()(int64_t i) const { p[i] = T(math::uniform64(seed, base + uint64_t(i))); }
};

// Counter c fills mask elements 4c .. 4c + 3.
template <typename T>
struct DropoutFn {
  T* m;
  int64_t n;
  float p;
  T keep;
  uint64_t seed, base;
  __device__ void operator()(int64_t c) const {
    const PhiloxWords w = philox(seed, base + uint64_t(c));
    for (int k = 0; k < 4 && c * 4 + k < n; ++k) m[c * 4 + k] = math::dropout_value(w, k, p, keep);
  }
};

void randn(const Tensor& out, uint64_t seed, uint64_t base) {
  const int64_t n = out.numel();
  dispatch_float(out.dtype(), "randn", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_flat(out.device(), (n + 1) / 2, RandnFn<T>{out.data<T>(), n, seed, base});
  });
}

void rand(const Tensor& out, uint64_t seed, uint64_t base) {
  dispatch_float(out.dtype(), "rand", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_flat(out.device(), out.numel(), RandFn<T>{out.data<T>(), seed, base});
  });
}

void dropout_mask(const Tensor& mask, double p, uint64_t seed, uint64_t base) {
  const int64_t n = mask.numel();
  dispatch_float(mask.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T keep = p >= 1.0 ? T(0) : T(1.0 / (1.0 - p));
    launch_flat(mask.device(), (n + 3) / 4, DropoutFn<T>{mask.data<T>(), n, float(p), keep, seed, base});
  });
}

constexpr int kRowThreads = 256;

// One block per row of probs (R, V): info[r] = (first invalid column or -1, nonzero count), and
// the row is recorded as failing when the CPU kernel would raise for it.
__global__ void multinomial_check_kernel(const double* probs, int64_t V, int64_t num_samples, int64_t* info,
                                         unsigned long long* failure) {
  const int64_t r = blockIdx.x;
  const double* row = probs + r * V;
  int64_t first_bad = V, nonzero = 0;
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) {
    const double v = row[j];
    if (!(v >= 0) || !isfinite(v)) first_bad = first_bad < j ? first_bad : j;
    nonzero += v > 0;
  }
  first_bad = block_reduce_tree<kRowThreads>(first_bad, MinOp{});
  nonzero = block_reduce_tree<kRowThreads>(nonzero, SumOp{});
  if (threadIdx.x == 0) {
    info[2 * r] = first_bad < V ? first_bad : -1;
    info[2 * r + 1] = nonzero;
    if (first_bad < V || nonzero < num_samples || nonzero == 0) record_failure(failure, uint64_t(r));
  }
}

// Weights staged in shared memory per pass: one thread runs the CPU's sequential sums, and it
// reads shared memory at a fraction of global memory's latency.
constexpr int kStage = 2048;  // doubles (16 KB)

// One block per row: the block copies the row into its scratch row w, then one thread draws the
// samples with the CPU's sequential sums (so the picks are the CPU's, bit for bit) while the
// block stages w through shared memory for it. Without replacement: a drawn category's weight
// becomes 0.
__global__ void multinomial_sample_kernel(const double* probs, double* scratch, int64_t V, int64_t num_samples,
                                          uint64_t seed, uint64_t base, int64_t* out) {
  __shared__ double buf[kStage];
  __shared__ bool found;
  const int64_t r = blockIdx.x;
  const int t = int(threadIdx.x);
  double* w = scratch + r * V;
  for (int64_t j = t; j < V; j += blockDim.x) w[j] = probs[r * V + j];
  __syncthreads();
  for (int64_t s = 0; s < num_samples; ++s) {
    double total = 0;  // meaningful on thread 0
    for (int64_t b = 0; b < V; b += kStage) {
      const int len = int(V - b < kStage ? V - b : kStage);
      for (int j = t; j < len; j += blockDim.x) buf[j] = w[b + j];
      __syncthreads();
      if (t == 0)
        for (int j = 0; j < len; ++j) total += buf[j];
      __syncthreads();
    }
    const double u = math::uniform64(seed, base + uint64_t(r * num_samples + s)) * total;
    double acc = 0;
    int64_t pick = -1;
    if (t == 0) found = false;
    for (int64_t b = 0; b < V; b += kStage) {
      const int len = int(V - b < kStage ? V - b : kStage);
      for (int j = t; j < len; j += blockDim.x) buf[j] = w[b + j];
      __syncthreads();
      if (t == 0) {
        for (int j = 0; j < len; ++j) {
          if (buf[j] <= 0) continue;
          acc += buf[j];
          pick = b + j;
          if (u < acc) {
            found = true;
            break;
          }
        }
      }
      __syncthreads();
      if (found) break;
    }
    if (t == 0) {
      out[r * num_samples + s] = pick;
      w[pick] = 0;
    }
    __syncthreads();  // the zeroed weight is seen by the next sample's staging
  }
}

void multinomial(const Tensor& out, const Tensor& probs, int64_t num_samples, uint64_t seed, uint64_t base) {
  const int64_t V = probs.size(-1), R = probs.numel() / V;
  if (R == 0) return;
  const Device dev = probs.device();
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev.index);
  const double* pp = probs.data<double>();
  // The CPU raises before drawing anything: the rows are checked first, which reads one word
  // back (sampling is not inside a training step).
  {
    FirstFailure failure(dev);
    Tensor info = empty({R, 2}, DType::Int64, dev);  // per row: first invalid column, nonzero count
    multinomial_check_kernel<<<unsigned(R), kRowThreads, 0, s>>>(pp, V, num_samples, info.data<int64_t>(),
                                                                 failure.device_word());
    CGAD_CUDA_CHECK_LAUNCH();
    const unsigned long long bad = failure.first();
    if (bad != FirstFailure::kNone) {
      const int64_t r = int64_t(bad);
      const int64_t first_bad = read_element(dev, info.data<int64_t>() + 2 * r);
      const int64_t nonzero = read_element(dev, info.data<int64_t>() + 2 * r + 1);
      if (first_bad >= 0)
        throw ValueError(str("multinomial: probabilities must be finite and non-negative, got ",
                             read_element(dev, pp + r * V + first_bad), " in row ", r));
      if (nonzero == 0) throw ValueError(str("multinomial: row ", r, " of the probabilities sums to zero"));
      throw ValueError(str("multinomial: cannot draw ", num_samples, " samples without replacement from row ", r,
                           ", which has ", nonzero, " categories of nonzero probability"));
    }
  }
  Tensor scratch = empty({R, V}, DType::Float64, dev);  // (R, V) weights left to draw from
  multinomial_sample_kernel<<<unsigned(R), kRowThreads, 0, s>>>(pp, scratch.data<double>(), V, num_samples, seed, base,
                                                                out.data<int64_t>());
  CGAD_CUDA_CHECK_LAUNCH();
}

}  // namespace

CGAD_REGISTER_KERNEL(randn_kernel, CUDA, randn);
CGAD_REGISTER_KERNEL(rand_kernel, CUDA, rand);
CGAD_REGISTER_KERNEL(dropout_mask_kernel, CUDA, dropout_mask);
CGAD_REGISTER_KERNEL(multinomial_kernel, CUDA, multinomial);

}  // namespace cgad::cuda
