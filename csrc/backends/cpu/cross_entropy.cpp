// CPU kernels of cross_entropy: log-sum-exp per row (never log(softmax)), and a backward that
// forms softmax - onehot directly from the saved row lse, so probabilities are never stored.
#include <cmath>
#include <type_traits>
#include <vector>
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "backends/cpu/simd_loop.h"
#include "backends/cpu/vmath.h"
#include "kernels/nn.h"

namespace cgad::cpu {

namespace {

// Statistics (lse, the loss) in stats_dtype: T itself for float32/float64, float32 for bfloat16
// logits, which are read and (their grad) written as bf16 with float32 arithmetic.
template <typename T>
using Stat = std::conditional_t<std::is_same_v<T, bf16>, float, T>;

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
  dispatch_float<true>(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = Stat<T>;
    const T* px = logits.data<T>();
    S* lse = lse_out.data<S>();
    parallel_rows(N, N * V, [&](int64_t r) {
      const int64_t t = tg[r];
      if (t == ignore_index) {
        lse[r] = S(0);
        return;
      }
      const T* xr = px + r * V;
      S mx = -INFINITY;
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < V; ++j) mx = S(xr[j]) > mx ? S(xr[j]) : mx;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < V; ++j) s += double(vm::exp(S(xr[j]) - mx));
      const double l = double(mx) + std::log(s);
      lse[r] = S(l);
      nll[size_t(r)] = l - double(S(xr[t]));
    });
    double total = 0;  // summed in row order: fixed whatever the thread count
    for (double v : nll) total += v;
    loss.data<S>()[0] = S(count > 0 ? total / count : NAN);
  });
}

void backward(const Tensor& dx, const Tensor& logits, const Tensor& lse_in, const Tensor& targets, const Tensor& g,
              int64_t ignore_index) {
  const int64_t N = targets.numel(), V = logits.shape().back();
  const int64_t* tg = targets.data<int64_t>();
  double count = 0;  // the forward's count of kept targets
  for (int64_t r = 0; r < N; ++r) count += tg[r] != ignore_index ? 1 : 0;
  const double scale = g.data<double>()[0] / count;
  dispatch_float<true>(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    using S = Stat<T>;
    const T* x = logits.data<T>();
    const S* lse = lse_in.data<S>();
    T* d = dx.data<T>();
    parallel_rows(N, N * V, [&](int64_t r) {
      T* dr = d + r * V;
      const int64_t t = tg[r];
      if (t == ignore_index) {
        for (int64_t j = 0; j < V; ++j) dr[j] = T(0);
        return;
      }
      const T* xr = x + r * V;
      const S l = lse[r], s = S(scale);
      simd_loop<T>(0, V, [&](int64_t j) { dr[j] = T(vm::exp(S(xr[j]) - l) * s); });
      if constexpr (std::is_same_v<T, bf16>)  // recomputed, so the target's grad is rounded once
        dr[t] = T(vm::exp(S(xr[t]) - l) * s - s);
      else
        dr[t] -= s;
    });
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(cross_entropy_forward_kernel, forward);
CGAD_REGISTER_CPU_KERNEL(cross_entropy_backward_kernel, backward);

}  // namespace cgad::cpu
