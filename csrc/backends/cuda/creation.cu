// CUDA kernels of the deterministic creation ops: arange and tril (the random ones are in
// random.cu).
#include "backends/cuda/launch.cuh"
#include "kernels/creation.h"

namespace cgad::cuda {

namespace {

template <typename T>
struct ArangeFn {
  T* p;
  double start, step;
  // the CPU's expression, element by element
  __device__ void operator()(int64_t i) const { p[i] = static_cast<T>(start + double(i) * step); }
};

// Zeroes element (i, j) of each (R, C) matrix where j > i + diagonal.
template <typename T>
struct TrilFn {
  T* p;
  int64_t R, C, diagonal;
  __device__ void operator()(int64_t idx) const {
    const int64_t j = idx % C, i = (idx / C) % R;
    if (j > i + diagonal) p[idx] = T{};
  }
};

void arange(const Tensor& out, double start, double step) {
  dispatch_numeric(out.dtype(), "arange", [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_flat(out.device(), out.numel(), ArangeFn<T>{out.data<T>(), start, step});
  });
}

void tril(const Tensor& t, int64_t diagonal) {
  const int64_t R = t.size(-2), C = t.size(-1);
  if (R * C == 0) return;
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    launch_flat(t.device(), t.numel(), TrilFn<T>{t.data<T>(), R, C, diagonal});
  });
}

}  // namespace

CGAD_REGISTER_KERNEL(arange_kernel, CUDA, arange);
CGAD_REGISTER_KERNEL(tril_kernel, CUDA, tril);

}  // namespace cgad::cuda
