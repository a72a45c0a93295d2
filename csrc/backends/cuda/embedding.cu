// CUDA kernels of embedding: the row gather, and its VJP, a scatter-add into the table's grad.
// The backward is deterministic without float atomics: the (id, token) pairs are sorted by id
// with CUB's radix sort, which is stable, so each table row's tokens come out in token order;
// then one block owns each distinct id (per column block) and adds that row's grads in token
// order: the CPU kernel's order, so dw is the CPU's bit for bit.
#include <climits>
#include <cub/device/device_radix_sort.cuh>
#include "backends/cuda/launch.cuh"
#include "kernels/nn.h"

namespace cgad::cuda {

namespace {

struct IdRangeCheck {
  const int64_t* id;
  int64_t V;
  unsigned long long* failure;
  __device__ void operator()(int64_t i) const {
    if (id[i] < 0 || id[i] >= V) record_failure(failure, uint64_t(i));
  }
};

// out[i, c] = w[id[i], c] for the (N, C) output.
template <typename T>
struct GatherFn {
  T* out;
  const T* w;
  const int64_t* id;
  int64_t C;
  __device__ void operator()(int64_t e) const {
    const int64_t i = e / C, c = e - i * C;
    out[e] = w[id[i] * C + c];
  }
};

struct IotaFn {
  int64_t* p;
  __device__ void operator()(int64_t i) const { p[i] = i; }
};

// Block (x, y): sorted position x, columns [256 y, 256 y + 256). Only the first position of
// each run of equal ids does work: it adds the run's grad rows into the table row in order.
template <typename T>
__global__ void scatter_rows_kernel(T* dw, const T* g, const unsigned long long* ids_sorted,
                                    const int64_t* tokens_sorted, int64_t N, int64_t V, int64_t C) {
  const int64_t i = blockIdx.x;
  const unsigned long long id = ids_sorted[i];
  if ((i > 0 && ids_sorted[i - 1] == id) || id >= (unsigned long long)V) return;
  const int64_t c = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  T acc = dw[int64_t(id) * C + c];
  for (int64_t j = i; j < N && ids_sorted[j] == id; ++j) acc += g[tokens_sorted[j] * C + c];
  dw[int64_t(id) * C + c] = acc;
}

void forward(const Tensor& out, const Tensor& w, const Tensor& ids) {
  const int64_t V = w.size(0), C = w.size(1), N = ids.numel();
  if (N == 0) return;
  const Device dev = w.device();
  const int64_t* id = ids.data<int64_t>();
  // IndexError before anything is written, as on the CPU: one word read back (a stream
  // synchronization) per call.
  FirstFailure failure(dev);
  launch_flat(dev, N, IdRangeCheck{id, V, failure.device_word()});
  const unsigned long long bad = failure.first();
  if (bad != FirstFailure::kNone)
    throw IndexError(str("embedding: index ", read_element(dev, id + int64_t(bad)), " is out of range for a table of ", V,
                         " rows (ids ", shape_str(ids.shape()), ")"));
  dispatch_all(w.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_flat(dev, N * C, GatherFn<T>{out.data<T>(), w.data<T>(), id, C});
  });
}

// The number of low bits that hold every id in [0, V).
int id_bits(int64_t V) {
  int b = 1;
  while (b < 63 && (int64_t(1) << b) < V) ++b;
  return b;
}

void backward(const Tensor& dw, const Tensor& g, const Tensor& ids) {
  const int64_t V = dw.size(0), C = dw.size(1), N = ids.numel();
  if (N == 0 || C == 0) return;
  if (N > INT_MAX) throw ValueError(str("embedding backward: ", N, " ids, at most ", INT_MAX, " on CUDA"));
  // The forward checked the ids and raised for any out of range; an id outside [0, V) here is
  // skipped by the kernel (never a write outside the table) rather than checked with a second
  // host synchronization inside the backward pass.
  const Device dev = dw.device();
  DeviceGuard guard(dev);
  cudaStream_t s = stream(dev.index);
  dispatch_float(g.dtype(), "embedding", [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor tokens = empty({N}, DType::Int64, dev), ids_sorted = empty({N}, DType::Int64, dev),
           tokens_sorted = empty({N}, DType::Int64, dev);
    launch_flat(dev, N, IotaFn{tokens.data<int64_t>()});
    // ids as unsigned keys: every valid id is in [0, V), so sorting the low id_bits(V) bits
    // orders them.
    const auto* keys_in = reinterpret_cast<const unsigned long long*>(ids.data<int64_t>());
    auto* keys_out = reinterpret_cast<unsigned long long*>(ids_sorted.data<int64_t>());
    const int end_bit = id_bits(V);
    size_t temp_bytes = 0;
    CGAD_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, tokens.data<int64_t>(),
                                                    tokens_sorted.data<int64_t>(), int(N), 0, end_bit, s));
    Tensor temp = empty({int64_t(temp_bytes)}, DType::Bool, dev);  // CUB's scratch, as bytes
    CGAD_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.raw_data(), temp_bytes, keys_in, keys_out, tokens.data<int64_t>(),
                                                    tokens_sorted.data<int64_t>(), int(N), 0, end_bit, s));
    const dim3 grid(unsigned(N), unsigned((C + kBlock - 1) / kBlock));
    scatter_rows_kernel<T><<<grid, kBlock, 0, s>>>(dw.data<T>(), g.data<T>(), keys_out,
                                        tokens_sorted.data<int64_t>(), N, V, C);
    CGAD_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

CGAD_REGISTER_KERNEL(embedding_forward_kernel, CUDA, forward);
CGAD_REGISTER_KERNEL(embedding_backward_kernel, CUDA, backward);

}  // namespace cgad::cuda
