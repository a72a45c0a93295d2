// cross_entropy on logits (N, V) with targets (N,), or (B, T, V) with (B, T): classes on the last
// dim, mean over the non-ignored targets. Computed with log-sum-exp (never log(softmax)), and the
// backward forms softmax - onehot directly from the saved row lse, so probabilities are never
// stored. Rows are N = B*T.
#include <cmath>
#include "backends/cpu/vmath.h"
#include "ops/nn_common.h"

namespace cgad {

namespace {

struct CrossEntropyBackward : Node {
  Tensor logits;                 // (N, V) contiguous
  std::vector<double> lse;       // (N,) log-sum-exp of each row
  std::vector<int64_t> targets;  // (N,)
  int64_t ignore_index = -100;
  double count = 0;  // non-ignored targets
  Shape in_shape;
  const char* name() const override { return "CrossEntropyBackward"; }
  bool release_saved() override {
    bool had = logits.defined();
    logits = Tensor();
    lse.clear();
    targets.clear();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    const int64_t N = int64_t(targets.size()), V = N ? logits.numel() / N : 0;
    // When nothing but this node holds the logits (the caller dropped them) and the graph is
    // not retained, the grad overwrites them in place: (B, T, V) logits are the largest
    // buffer of a GPT-2 step, and this saves a second one at the step's peak.
    const bool reuse = final_use && logits.impl_ptr().use_count() == 1 &&
                       logits.impl()->storage.use_count() == 1 && logits.is_contiguous();
    Tensor dx = reuse ? make_view(logits, in_shape, contiguous_strides(in_shape), logits.impl()->offset)
                      : empty(in_shape, logits.dtype(), logits.device());
    const double scale = cast(g, DType::Float64).data<double>()[0] / count;
    dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* x = logits.data<T>();
      T* d = dx.data<T>();
      parallel_rows(N, N * V, [&](int64_t r) {
        T* dr = d + r * V;
        const int64_t t = targets[size_t(r)];
        if (t == ignore_index) {
          for (int64_t j = 0; j < V; ++j) dr[j] = T(0);
          return;
        }
        const T* xr = x + r * V;
        const T l = T(lse[size_t(r)]), s = T(scale);
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) dr[j] = vm::exp(xr[j] - l) * s;
        dr[t] -= s;
      });
    });
    return {dx, Tensor()};
  }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, int64_t ignore_index) {
  check_floating(logits_in, "cross_entropy", "logits");
  check_same_device(logits_in, targets_in, "cross_entropy");
  if (targets_in.dtype() != DType::Int64 && targets_in.dtype() != DType::Int32)
    throw TypeError(str("cross_entropy: expected int64 or int32 targets, got ", dtype_name(targets_in.dtype())));
  const Shape& ls = logits_in.shape();
  const Shape& ts = targets_in.shape();
  bool ok = (ls.size() == 2 || ls.size() == 3) && ts.size() + 1 == ls.size();
  for (size_t i = 0; ok && i < ts.size(); ++i) ok = ts[i] == ls[i];
  if (!ok)
    throw ValueError(str("cross_entropy: expected logits (N, V) with targets (N,) or (B, T, V) with (B, T), got logits ",
                         shape_str(ls), " and targets ", shape_str(ts)));
  const int64_t V = ls.back(), N = targets_in.numel();
  if (V == 0) throw ValueError(str("cross_entropy: logits ", shape_str(ls), " have no classes"));
  Tensor tc = contiguous_data(cast(targets_in, DType::Int64));
  std::vector<int64_t> targets(tc.data<int64_t>(), tc.data<int64_t>() + N);
  double count = 0;
  for (int64_t t : targets) {
    if (t == ignore_index) continue;
    if (t < 0 || t >= V)
      throw IndexError(str("cross_entropy: target ", t, " is out of range for ", V, " classes (logits ", shape_str(ls), ")"));
    count += 1;
  }
  Tensor x = contiguous_data(logits_in);
  std::vector<double> lse(size_t(N), 0.0), nll(size_t(N), 0.0);
  dispatch_float(x.dtype(), "cross_entropy", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = x.data<T>();
    parallel_rows(N, N * V, [&](int64_t r) {
      const int64_t t = targets[size_t(r)];
      if (t == ignore_index) return;
      const T* xr = px + r * V;
      T mx = -INFINITY;
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < V; ++j) mx = xr[j] > mx ? xr[j] : mx;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < V; ++j) s += double(vm::exp(xr[j] - mx));
      lse[size_t(r)] = double(mx) + std::log(s);
      nll[size_t(r)] = lse[size_t(r)] - double(xr[t]);
    });
  });
  double total = 0;  // summed in row order: fixed whatever the thread count
  for (double v : nll) total += v;
  Tensor loss = full({}, count > 0 ? total / count : NAN, x.dtype(), x.device());
  if (auto n = record<CrossEntropyBackward>(loss, {&logits_in, &targets_in})) {
    n->logits = x.detach();
    n->lse = std::move(lse);
    n->targets = std::move(targets);
    n->ignore_index = ignore_index;
    n->count = count;
    n->in_shape = ls;
  }
  return loss;
}

}  // namespace cgad
