// clip_grad_norm_: torch's formula. Each grad's norm is summed in double over fixed blocks (one
// per thread, each in a fixed SIMD order, added in order), rounded to float32 as torch's per-tensor norms are, and the
// total is the norm of those norms.
#include <cmath>
#include "backends/cpu/parallel.h"
#include "core/error.h"
#include "ops/ops.h"
#include "optim/adam.h"

namespace cgad {

namespace {

template <typename T>
double sum_squares(const T* x, int64_t n) {
  const int nt = threads_for(n);
  std::vector<double> part(size_t(nt), 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    double s = 0;
    const int64_t b = n * tid / nth, e = n * (tid + 1) / nth;
#pragma omp simd reduction(+ : s)
    for (int64_t i = b; i < e; ++i) s += double(x[i]) * double(x[i]);
    part[size_t(tid)] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}

}  // namespace

Tensor clip_grad_norm(const std::vector<Tensor>& grads, double max_norm) {
  if (!(max_norm >= 0)) throw ValueError(str("clip_grad_norm_: max_norm must be non-negative, got ", max_norm));
  std::vector<Tensor> gs;
  for (const Tensor& g : grads) {
    if (!g.defined()) continue;
    if (g.dtype() != DType::Float32 && g.dtype() != DType::Float64)
      throw TypeError(str("clip_grad_norm_: grads must be float32 or float64, got ", dtype_name(g.dtype())));
    gs.push_back(contiguous_data(g));
  }
  double total_sq = 0;
  for (const Tensor& g : gs) {
    const double sq = dispatch_float(g.dtype(), "clip_grad_norm_", [&](auto tag) {
      using T = typename decltype(tag)::type;
      return sum_squares<T>(g.data<T>(), g.numel());
    });
    const double norm = double(float(std::sqrt(sq)));
    total_sq += norm * norm;
  }
  const float total = float(std::sqrt(total_sq));
  const float coef = std::min(float(max_norm) / (total + 1e-6f), 1.0f);
  if (coef == 1.0f) return full({}, double(total), DType::Float32, Device{});  // x * 1 == x: skip the pass
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    Tensor g = grads[i];
    mul_scalar_(g, double(coef));
  }
  return full({}, double(total), DType::Float32, Device{});
}

}  // namespace cgad
