// Type promotion and the creation ops (arange, randn, rand, tril, multinomial).
#include <algorithm>
#include <cmath>
#include "autograd/node.h"
#include "core/rng.h"
#include "kernels/creation.h"
#include "kernels/elementwise.h"
#include "ops/ops.h"

namespace cgad {

CGAD_DEFINE_KERNEL(arange_kernel, void(const Tensor&, double, double));
CGAD_DEFINE_KERNEL(randn_kernel, void(const Tensor&, uint64_t, uint64_t));
CGAD_DEFINE_KERNEL(rand_kernel, void(const Tensor&, uint64_t, uint64_t));
CGAD_DEFINE_KERNEL(tril_kernel, void(const Tensor&, int64_t));
CGAD_DEFINE_KERNEL(multinomial_kernel, void(const Tensor&, const Tensor&, int64_t, uint64_t, uint64_t));

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

// Not full(): a float operand overflows to inf in a float dtype, as torch's does (float32 * 1e300
// is inf), without an error. Integer results never come here: the bindings check Python ints
// against their integer dtype and fill those through full().
Tensor scalar_tensor(const Scalar& s, DType dtype, Device device) {
  Tensor t = empty({}, dtype, device);
  fill_kernel()(device, t, s.value);
  return t;
}

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  if (step == 0) throw ValueError("arange: step must be nonzero");
  if (!std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step))
    throw ValueError(str("arange: start, end and step must be finite, got ", start, ", ", end, ", ", step));
  if ((end - start) / step > 1e12) throw ValueError(str("arange: too many elements from ", start, " to ", end, " by ", step));
  const double count = std::ceil((end - start) / step);  // may be hugely negative: clamp first
  const int64_t n = count > 0 ? int64_t(count) : 0;
  if (dtype == DType::BFloat16) return cast(arange(start, end, step, DType::Float32, device), dtype);
  if (n > 0 && is_integral(dtype)) {  // the ends are the extremes: a value past the dtype is an error, not UB
    check_scalar_fits("arange", start, dtype);
    check_scalar_fits("arange", start + double(n - 1) * step, dtype);
  }
  Tensor out = empty({n}, dtype, device);
  arange_kernel()(device, out, start, step);
  return out;
}

Tensor randn(const Shape& shape, DType dtype, Device device) {
  if (dtype == DType::BFloat16) return cast(randn(shape, DType::Float32, device), dtype);  // the same draws, rounded
  Tensor out = empty(shape, dtype, device);
  Generator& g = Generator::global();
  const uint64_t seed = g.seed, base = g.reserve(uint64_t((out.numel() + 1) / 2));
  randn_kernel()(device, out, seed, base);
  return out;
}

Tensor rand(const Shape& shape, DType dtype, Device device) {
  if (dtype == DType::BFloat16) return cast(rand(shape, DType::Float32, device), dtype);
  Tensor out = empty(shape, dtype, device);
  Generator& g = Generator::global();
  const uint64_t seed = g.seed, base = g.reserve(uint64_t(out.numel()));
  rand_kernel()(device, out, seed, base);
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
  diagonal = std::clamp<int64_t>(diagonal, -t.size(-2) - 1, t.size(-1));  // beyond these every element is dropped or kept
  tril_kernel()(out.device(), out, diagonal);
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
  Shape oshape = probs.dim() == 2 ? Shape{R, num_samples} : Shape{num_samples};
  Tensor out = empty(oshape, DType::Int64, probs.device());
  Generator& g = Generator::global();
  const uint64_t seed = g.seed, base = g.reserve(uint64_t(R * num_samples));
  try {
    multinomial_kernel()(out.device(), out, p, num_samples, seed, base);
  } catch (...) {
    g.offset = base;  // bad probabilities draw nothing: the generator is left as it was
    throw;
  }
  return out;
}

}  // namespace cgad
