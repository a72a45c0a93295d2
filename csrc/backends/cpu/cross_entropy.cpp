// CPU kernels of cross_entropy: log-sum-exp per row (never log(softmax)), and a backward that
// forms softmax - onehot directly from the saved row lse, so probabilities are never stored.
#include <cmath>
#include <vector>
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "backends/cpu/vmath.h"
#include "kernels/nn.h"

namespace cgad::cpu {

namespace {

// The float32/float64 kernels store lse in T, which is stats_dtype for both.
void forward(const Tensor& loss, const Tensor& lse_out, const Tensor& logits, const Tensor& targets,
             int64_t ignore_index) {
  const int64_t N = targets.numel(), V = logits.shape().back();
  const int64_t* tg = targets.data<int64_t>();
  double count = 0;
  for (int64_t r = 0; r < N; ++r) {  // on one thread: an exception may not leave an OpenMP region
    const int64_t t = tg[r];
    if (t == ignore_index) continue;
    if (t < 0 || t >= V)
      throw IndexError(str("cross_entropy: target ", t, " is out of range for ", V, " classes (logits ",
                           shape_str(logits.shape()), ")"));
    count += 1;
  }
  std::vector<double> nll(size_t(N), 0.0);
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = logits.data<T>();
    T* lse = lse_out.data<T>();
    parallel_rows(N, N * V, [&](int64_t r) {
      const int64_t t = tg[r];
      if (t == ignore_index) {
        lse[r] = T(0);
        return;
      }
      const T* xr = px + r * V;
      T mx = -INFINITY;
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < V; ++j) mx = xr[j] > mx ? xr[j] : mx;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < V; ++j) s += double(vm::exp(xr[j] - mx));
      const double l = double(mx) + std::log(s);
      lse[r] = T(l);
      nll[size_t(r)] = l - double(xr[t]);
    });
    double total = 0;  // summed in row order: fixed whatever the thread count
    for (double v : nll) total += v;
    loss.data<T>()[0] = T(count > 0 ? total / count : NAN);
  });
}

void backward(const Tensor& dx, const Tensor& logits, const Tensor& lse_in, const Tensor& targets, const Tensor& g,
              int64_t ignore_index) {
  const int64_t N = targets.numel(), V = logits.shape().back();
  const int64_t* tg = targets.data<int64_t>();
  double count = 0;  // the forward's count of kept targets
  for (int64_t r = 0; r < N; ++r) count += tg[r] != ignore_index ? 1 : 0;
  const double scale = g.data<double>()[0] / count;
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* x = logits.data<T>();
    const T* lse = lse_in.data<T>();
    T* d = dx.data<T>();
    parallel_rows(N, N * V, [&](int64_t r) {
      T* dr = d + r * V;
      const int64_t t = tg[r];
      if (t == ignore_index) {
        for (int64_t j = 0; j < V; ++j) dr[j] = T(0);
        return;
      }
      const T* xr = x + r * V;
      const T l = lse[r], s = T(scale);
#pragma omp simd
      for (int64_t j = 0; j < V; ++j) dr[j] = vm::exp(xr[j] - l) * s;
      dr[t] -= s;
    });
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(cross_entropy_forward_kernel, forward);
CGAD_REGISTER_CPU_KERNEL(cross_entropy_backward_kernel, backward);

}  // namespace cgad::cpu
