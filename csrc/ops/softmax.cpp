// softmax and log_softmax along any dim, with their VJPs. The kernels work on contiguous rows
// of the last dim; another dim is moved there by transpose (graph ops, so nothing is cut).
// Both subtract the row max first and sum in double, so large logits neither overflow nor
// lose the small terms.
#include <cmath>
#include "backends/cpu/vmath.h"
#include "ops/nn_common.h"

namespace cgad {

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

struct SoftmaxBackward : Node {
  Tensor y;  // (N, C) the forward's output
  bool log = false;
  const char* name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  bool release_saved() override { bool had = y.defined(); y = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = contiguous_data(g_in);
    Tensor dx = empty(y.shape(), y.dtype(), y.device());
    const int64_t C = y.dim() ? y.size(-1) : 1, N = C ? y.numel() / C : 0;
    dispatch_float(y.dtype(), name(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      softmax_backward<T>(g.data<T>(), y.data<T>(), dx.data<T>(), N, C, log);
    });
    return {dx};
  }
};

Tensor softmax_last(const Tensor& x_in, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  Tensor x = contiguous_data(x_in);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  const int64_t C = x.dim() ? x.size(-1) : 1, N = C ? x.numel() / C : 0;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_forward<T>(x.data<T>(), y.data<T>(), N, C, log);
  });
  if (auto n = record<SoftmaxBackward>(y, {&x_in})) {
    n->y = y.detach();
    n->log = log;
  }
  return y;
}

Tensor softmax_any(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  if (!is_floating(x.dtype()) || x.dtype() == DType::BFloat16)
    throw TypeError(str(op, ": expected a float32 or float64 tensor, got ", dtype_name(x.dtype())));
  const int64_t nd = std::max<int64_t>(x.dim(), 1);
  const int64_t d = wrap_dim(dim, nd, op);
  if (x.dim() == 0) return reshape(softmax_last(reshape(x, {1}), log), {});
  if (d == x.dim() - 1) return softmax_last(x, log);
  return transpose(softmax_last(transpose(x, d, -1), log), d, -1);
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_any(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_any(x, dim, true); }

}  // namespace cgad
