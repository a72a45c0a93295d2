// CPU kernels of layer_norm: the forward saves each row's mean and rstd (as llm.c's
// layernorm_forward does) so the backward needs no second pass over the statistics.
#include <cmath>
#include <vector>
#include "backends/cpu/layer_norm_row.h"
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "kernels/nn.h"

namespace cgad::cpu {

namespace {

// x, y: (N, C); w, b: (C,) or null; mean, rstd: (N,). The statistics are stored in T: for
// float32 and float64, stats_dtype is the input's dtype.
template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t N, int64_t C, double eps) {
  parallel_rows(N, N * C, [&](int64_t r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    T mt, rs;
    row_mean_rstd(xr, C, eps, mt, rs);
    if (w && b) {
      normalize_affine_row(xr, w, b, yr, C, mt, rs);
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

void forward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x, const Tensor& w,
             const Tensor& b, int64_t N, int64_t C, double eps) {
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    layer_norm_forward<T>(x.data<T>(), w.data_or_null<T>(), b.data_or_null<T>(), y.data<T>(), mean.data<T>(),
                          rstd.data<T>(), N, C, eps);
  });
}

void backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& g, const Tensor& x,
              const Tensor& w, const Tensor& mean, const Tensor& rstd, int64_t N, int64_t C) {
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    layer_norm_backward<T>(g.data<T>(), x.data<T>(), w.data_or_null<T>(), mean.data<T>(), rstd.data<T>(),
                           dx.data_or_null<T>(), dw.data_or_null<T>(), db.data_or_null<T>(), N, C);
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(layer_norm_forward_kernel, forward);
CGAD_REGISTER_CPU_KERNEL(layer_norm_backward_kernel, backward);

}  // namespace cgad::cpu
