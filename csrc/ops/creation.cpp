// Type promotion and the creation ops (arange, randn, rand, tril, multinomial).
#include <cmath>
#include "autograd/node.h"
#include "backends/cpu/loops.h"
#include "core/rng.h"
#include "ops/ops.h"

namespace cgad {

DType result_type(const Tensor& a, const Tensor& b) {
  // A 0-d tensor beside a dimensioned one widens it only across categories, like a scalar.
  const bool a0 = a.dim() == 0, b0 = b.dim() == 0;
  if (a0 != b0) {
    const Tensor& dimmed = a0 ? b : a;
    const Tensor& zerod = a0 ? a : b;
    if (category(zerod.dtype()) > category(dimmed.dtype())) return zerod.dtype();
    return dimmed.dtype();
  }
  return promote(a.dtype(), b.dtype());
}

DType result_type(const Tensor& a, const Scalar& s) {
  int scat = s.is_bool ? 0 : (s.is_float ? 2 : 1);
  if (scat <= category(a.dtype())) return a.dtype();
  return scat == 2 ? DType::Float32 : (scat == 1 ? DType::Int64 : DType::Bool);
}

Tensor scalar_tensor(const Scalar& s, DType dtype, Device device) { return full({}, s.value, dtype, device); }

Tensor arange(double start, double end, double step, DType dtype) {
  if (step == 0) throw ValueError("arange: step must be nonzero");
  if (!std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step))
    throw ValueError(str("arange: start, end and step must be finite, got ", start, ", ", end, ", ", step));
  if ((end - start) / step > 1e12) throw ValueError(str("arange: too many elements from ", start, " to ", end, " by ", step));
  const double count = std::ceil((end - start) / step);  // may be hugely negative: clamp first
  const int64_t n = count > 0 ? int64_t(count) : 0;
  Tensor out = empty({n}, dtype, Device{});
  dispatch_numeric(dtype, "arange", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + double(i) * step);
  });
  return out;
}

Tensor randn(const Shape& shape, DType dtype) {
  Tensor out = empty(shape, dtype, Device{});
  const int64_t n = out.numel();
  Generator& g = Generator::global();
  const uint64_t seed = g.seed, base = g.reserve(uint64_t((n + 1) / 2));
  dispatch_float(dtype, "randn", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    const int64_t pairs = (n + 1) / 2;
    const int nt = threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t i = 0; i < pairs; ++i) {
      auto w = philox(seed, base + uint64_t(i));
      // Box-Muller on doubles: u1 in (0, 1] so the log is finite.
      double u1 = 1.0 - uniform_from64(w[0], w[1]);
      double u2 = uniform_from64(w[2], w[3]);
      double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
      p[2 * i] = T(r * std::cos(th));
      if (2 * i + 1 < n) p[2 * i + 1] = T(r * std::sin(th));
    }
  });
  return out;
}

Tensor rand(const Shape& shape, DType dtype) {
  Tensor out = empty(shape, dtype, Device{});
  const int64_t n = out.numel();
  Generator& g = Generator::global();
  const uint64_t seed = g.seed, base = g.reserve(uint64_t(n));
  dispatch_float(dtype, "rand", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    const int nt = threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t i = 0; i < n; ++i) {
      auto w = philox(seed, base + uint64_t(i));
      p[i] = T(uniform_from64(w[0], w[1]));
    }
  });
  return out;
}

namespace {

struct TrilBackward : Node {
  int64_t diagonal = 0;
  const char* name() const override { return "TrilBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {tril(g, diagonal)}; }
};

}  // namespace

Tensor tril(const Tensor& t, int64_t diagonal) {
  if (t.dim() < 2) throw ValueError(str("tril: expected a tensor with at least 2 dims, got shape ", shape_str(t.shape())));
  Tensor out = clone(t.detach());
  const int64_t R = t.size(-2), C = t.size(-1), batch = R * C == 0 ? 0 : out.numel() / (R * C);
  diagonal = std::clamp<int64_t>(diagonal, -R - 1, C);  // beyond these every element is dropped or kept
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < R; ++i)
        for (int64_t j = std::max<int64_t>(0, i + diagonal + 1); j < C; ++j) p[(b * R + i) * C + j] = T{};
  });
  if (auto n = record<TrilBackward>(out, {&t})) n->diagonal = diagonal;
  return out;
}

Tensor multinomial(const Tensor& probs, int64_t num_samples) {
  if (probs.dim() < 1 || probs.dim() > 2)
    throw ValueError(str("multinomial: expected a 1-D or 2-D tensor of probabilities, got shape ", shape_str(probs.shape())));
  if (!is_floating(probs.dtype())) throw TypeError(str("multinomial: expected float probabilities, got ", dtype_name(probs.dtype())));
  const int64_t V = probs.size(-1), R = probs.dim() == 2 ? probs.size(0) : 1;
  if (V == 0) throw ValueError("multinomial: the probability rows are empty");
  if (num_samples < 1) throw ValueError(str("multinomial: num_samples must be positive, got ", num_samples));
  if (num_samples > V)
    throw ValueError(str("multinomial: cannot draw ", num_samples, " samples without replacement from ", V, " categories"));
  Tensor p = cast(contiguous_data(probs), DType::Float64);
  const double* pp = p.data<double>();
  for (int64_t r = 0; r < R; ++r) {
    double s = 0;
    for (int64_t j = 0; j < V; ++j) {
      double v = pp[r * V + j];
      if (!(v >= 0) || !std::isfinite(v))
        throw ValueError(str("multinomial: probabilities must be finite and non-negative, got ", v, " in row ", r));
      s += v;
    }
    if (!(s > 0)) throw ValueError(str("multinomial: row ", r, " of the probabilities sums to zero"));
  }
  Shape oshape = probs.dim() == 2 ? Shape{R, num_samples} : Shape{num_samples};
  Tensor out = empty(oshape, DType::Int64, probs.device());
  int64_t* po = out.data<int64_t>();
  Generator& g = Generator::global();
  const uint64_t seed = g.seed, base = g.reserve(uint64_t(R * num_samples));
  std::vector<double> w(static_cast<size_t>(V));
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t j = 0; j < V; ++j) w[j] = pp[r * V + j];
    for (int64_t s = 0; s < num_samples; ++s) {  // without replacement: drawn categories drop out
      double total = 0;
      for (int64_t j = 0; j < V; ++j) total += w[j];
      auto words = philox(seed, base + uint64_t(r * num_samples + s));
      double u = uniform_from64(words[0], words[1]) * total, acc = 0;
      int64_t pick = -1;
      for (int64_t j = 0; j < V; ++j) {
        if (w[j] <= 0) continue;
        acc += w[j];
        pick = j;
        if (u < acc) break;
      }
      po[r * num_samples + s] = pick;
      w[pick] = 0;
    }
  }
  return out;
}

}  // namespace cgad
