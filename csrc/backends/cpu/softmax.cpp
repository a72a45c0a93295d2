// CPU kernels of softmax and log_softmax over contiguous rows. Both subtract the row max first
// and sum in double, so large logits neither overflow nor lose the small terms.
#include <cmath>
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "backends/cpu/vmath.h"
#include "kernels/nn.h"

namespace cgad::cpu {

namespace {

// x, y: (N, C) contiguous rows. log=false: y = softmax(x); log=true: y = log_softmax(x).
template <typename T>
void softmax_forward(const T* x, T* y, int64_t N, int64_t C, bool log) {
  parallel_rows(N, N * C, [&](int64_t r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    T mx = -INFINITY;
    for (int64_t j = 0; j < C; ++j) mx = xr[j] > mx ? xr[j] : mx;
    if (mx == -INFINITY) mx = 0;  // an all -inf row gives NaN as torch (0/0), not a max of -inf
    double s = 0;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < C; ++j) s += double(vm::exp(xr[j] - mx));
      const T lse = T(std::log(s));
      for (int64_t j = 0; j < C; ++j) yr[j] = xr[j] - mx - lse;
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < C; ++j) {
        yr[j] = vm::exp(xr[j] - mx);
        s += double(yr[j]);
      }
      const T inv = T(1.0 / s);
      for (int64_t j = 0; j < C; ++j) yr[j] *= inv;
    }
  });
}

// softmax: dx = y * (g - sum(g * y)); log_softmax: dx = g - exp(y) * sum(g).
template <typename T>
void softmax_backward(const T* g, const T* y, T* dx, int64_t N, int64_t C, bool log) {
  parallel_rows(N, N * C, [&](int64_t r) {
    const T* gr = g + r * C;
    const T* yr = y + r * C;
    T* dr = dx + r * C;
    double s = 0;
    if (log) {
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < C; ++j) s += double(gr[j]);
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) dr[j] = gr[j] - vm::exp(yr[j]) * T(s);
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < C; ++j) s += double(gr[j]) * double(yr[j]);
      for (int64_t j = 0; j < C; ++j) dr[j] = yr[j] * (gr[j] - T(s));
    }
  });
}

void forward(const Tensor& y, const Tensor& x, int64_t N, int64_t C, bool log) {
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_forward<T>(x.data<T>(), y.data<T>(), N, C, log);
  });
}

void backward(const Tensor& dx, const Tensor& g, const Tensor& y, int64_t N, int64_t C, bool log) {
  dispatch_float(y.dtype(), log ? "LogSoftmaxBackward" : "SoftmaxBackward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_backward<T>(g.data<T>(), y.data<T>(), dx.data<T>(), N, C, log);
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(softmax_forward_kernel, forward);
CGAD_REGISTER_CPU_KERNEL(softmax_backward_kernel, backward);

}  // namespace cgad::cpu
