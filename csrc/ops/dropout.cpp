// dropout: zeroes each element with probability p and scales the rest by 1/(1-p), with its VJP
// (the same mask). The mask comes from cgad's Philox generator, so a seed reproduces it.
#include "core/rng.h"
#include "ops/nn_common.h"

namespace cgad {

namespace {

struct DropoutBackward : Node {
  Tensor mask;  // the forward's scale per element: 0 or 1/(1-p)
  const char* name() const override { return "DropoutBackward"; }
  bool release_saved() override { bool had = mask.defined(); mask = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul(g, mask)}; }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training) {
  if (!(p >= 0.0 && p <= 1.0)) throw ValueError(str("dropout: p must be in [0, 1], got ", p));
  check_floating(x, "dropout", "input");
  if (!training || p == 0.0) return x;
  Tensor mask = empty(x.shape(), x.dtype(), x.device());
  const int64_t n = mask.numel();
  const uint64_t seed = Generator::global().seed;
  const uint64_t base = Generator::global().reserve(uint64_t((n + 3) / 4));
  dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* m = mask.data<T>();
    const T keep = p >= 1.0 ? T(0) : T(1.0 / (1.0 - p));
    const float pf = float(p);
    parallel_rows((n + 3) / 4, n, [&](int64_t c) {
      auto w = philox(seed, base + uint64_t(c));
      for (int64_t k = 0; k < 4 && c * 4 + k < n; ++k) m[c * 4 + k] = uniform_from(w[size_t(k)]) < pf ? T(0) : keep;
    });
  });
  Tensor out;
  {
    NoGradGuard guard;
    out = mul(x, mask);
  }
  if (auto node = record<DropoutBackward>(out, {&x})) node->mask = mask;
  return out;
}

}  // namespace cgad
