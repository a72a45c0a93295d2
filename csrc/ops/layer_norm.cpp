// layer_norm over the trailing normalized_shape, with its VJP. The forward saves each row's
// mean and rstd (as llm.c's layernorm_forward does) so the backward needs no second pass over
// the statistics. Rows: N = numel / C, C = prod(normalized_shape).
#include <cmath>
#include <vector>
#include "ops/nn_common.h"

namespace cgad {

namespace {

// x, y: (N, C); w, b: (C,) or null; mean, rstd: (N,).
template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t N, int64_t C, double eps) {
  parallel_rows(N, N * C, [&](int64_t r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    double m = 0;
#pragma omp simd reduction(+ : m)
    for (int64_t j = 0; j < C; ++j) m += double(xr[j]);
    m /= double(C);
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < C; ++j) {
      const double d = double(xr[j]) - m;
      v += d * d;
    }
    v /= double(C);  // biased variance, as torch
    const T mt = T(m), rs = T(1.0 / std::sqrt(v + eps));
    if (w && b) {  // GPT-2's case, in one vectorized pass
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) yr[j] = (xr[j] - mt) * rs * w[j] + b[j];
    } else {
      for (int64_t j = 0; j < C; ++j) {
        T n = (xr[j] - mt) * rs;
        if (w) n *= w[j];
        if (b) n += b[j];
        yr[j] = n;
      }
    }
    mean[r] = mt;
    rstd[r] = rs;
  });
}

// dx = rstd * (dn - mean(dn) - xhat * mean(dn * xhat)), dn = g * w; dw = sum_rows(g * xhat);
// db = sum_rows(g). dw/db: each thread sums its static block of rows, then the blocks are added
// in thread order, so the result is fixed for a given thread count. The row loops have no
// branches (a missing weight reads ones, the sums are always kept) so they vectorize.
template <typename T>
void layer_norm_backward(const T* g, const T* x, const T* w_in, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                         int64_t N, int64_t C) {
  const int nt = threads_for(N * C);
  std::vector<T> ones(w_in ? 0 : size_t(C), T(1));
  const T* w = w_in ? w_in : ones.data();
  std::vector<double> part_w(size_t(nt) * size_t(C), 0.0), part_b(size_t(nt) * size_t(C), 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const int64_t r0 = N * tid / nth, r1 = N * (tid + 1) / nth;
    double* pw = part_w.data() + size_t(tid) * size_t(C);
    double* pb = part_b.data() + size_t(tid) * size_t(C);
    for (int64_t r = r0; r < r1; ++r) {
      const T* gr = g + r * C;
      const T* xr = x + r * C;
      const T mt = mean[r], rs = rstd[r];
      double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t j = 0; j < C; ++j) {
        const T xhat = (xr[j] - mt) * rs;
        const T dn = gr[j] * w[j];
        s1 += double(dn);
        s2 += double(dn) * double(xhat);
        pw[j] += double(gr[j]) * double(xhat);
        pb[j] += double(gr[j]);
      }
      if (dx) {
        const T m1 = T(s1 / double(C)), m2 = T(s2 / double(C));
        T* dr = dx + r * C;
#pragma omp simd
        for (int64_t j = 0; j < C; ++j) {
          const T xhat = (xr[j] - mt) * rs;
          dr[j] = rs * (gr[j] * w[j] - m1 - xhat * m2);
        }
      }
    }
  }
  for (int64_t j = 0; j < C; ++j) {
    double sw = 0, sb = 0;
    for (int t = 0; t < nt; ++t) {
      sw += part_w[size_t(t) * size_t(C) + size_t(j)];
      sb += part_b[size_t(t) * size_t(C) + size_t(j)];
    }
    if (dw) dw[j] = T(sw);
    if (db) db[j] = T(sb);
  }
}

struct LayerNormBackward : Node {
  Tensor x, w, mean, rstd;  // x (N, C) contiguous; w (C,) or undefined; mean, rstd (N,)
  Shape x_shape, wshape;
  const char* name() const override { return "LayerNormBackward"; }
  bool release_saved() override {
    bool had = x.defined();
    x = w = mean = rstd = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = contiguous_data(g_in);
    const int64_t N = mean.numel(), C = numel_of(wshape);  // not x.numel() / N: N may be 0
    Tensor dx = needs_grad(0) ? empty(x_shape, x.dtype(), x.device()) : Tensor();
    Tensor dw = needs_grad(1) ? empty(wshape, x.dtype(), x.device()) : Tensor();
    Tensor db = needs_grad(2) ? empty(wshape, x.dtype(), x.device()) : Tensor();
    dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
      using T = typename decltype(tag)::type;
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; };
      layer_norm_backward<T>(g.data<T>(), x.data<T>(), ptr(w), mean.data<T>(), rstd.data<T>(), ptr(dx), ptr(dw),
                             ptr(db), N, C);
    });
    return {dx, dw, db};
  }
};

void check_param(const Tensor& p, const Tensor& x, const Shape& ns, const char* what) {
  if (!p.defined()) return;
  check_floating(p, "layer_norm", what);
  check_same_dtype(x, p, "layer_norm");
  check_same_device(x, p, "layer_norm");
  if (p.shape() != ns)
    throw ValueError(str("layer_norm: ", what, " of shape ", shape_str(p.shape()), " does not match normalized_shape ",
                         shape_str(ns)));
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Shape& ns, const Tensor& w_in, const Tensor& b_in, double eps) {
  check_floating(x_in, "layer_norm", "input");
  const int64_t k = int64_t(ns.size());
  bool ok = k >= 1 && k <= x_in.dim();
  for (int64_t i = 0; ok && i < k; ++i) ok = x_in.shape()[size_t(x_in.dim() - k + i)] == ns[size_t(i)];
  if (!ok)
    throw ValueError(str("layer_norm: normalized_shape ", shape_str(ns), " does not match the trailing dims of input ",
                         shape_str(x_in.shape())));
  if (!(eps >= 0)) throw ValueError(str("layer_norm: eps must be non-negative, got ", eps));
  check_param(w_in, x_in, ns, "weight");
  check_param(b_in, x_in, ns, "bias");
  Tensor x = contiguous_data(x_in);
  Tensor w = w_in.defined() ? contiguous_data(w_in) : Tensor(), b = b_in.defined() ? contiguous_data(b_in) : Tensor();
  const int64_t C = numel_of(ns), N = C ? x.numel() / C : 0;
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  Tensor mean = empty({N}, x.dtype(), x.device()), rstd = empty({N}, x.dtype(), x.device());
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    layer_norm_forward<T>(x.data<T>(), w.defined() ? w.data<T>() : nullptr, b.defined() ? b.data<T>() : nullptr,
                          y.data<T>(), mean.data<T>(), rstd.data<T>(), N, C, eps);
  });
  if (auto n = record<LayerNormBackward>(y, {&x_in, &w_in, &b_in})) {
    n->x = x.detach();
    n->w = w.defined() ? w.detach() : Tensor();
    n->mean = mean;
    n->rstd = rstd;
    n->x_shape = x.shape();
    n->wshape = ns;
  }
  return y;
}

}  // namespace cgad
