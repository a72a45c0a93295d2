// dropout: zeroes each element with probability p and scales the rest by 1/(1-p), with its VJP
// (the same mask). The mask comes from cgad's Philox generator, so a seed reproduces it: the op
// reserves the counters, the kernel (kernels/nn.h) draws from them.
#include "core/rng.h"
#include "kernels/nn.h"
#include "ops/autocast.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(dropout_mask_kernel, void(const Tensor&, double, uint64_t, uint64_t));

namespace {

struct DropoutBackward : Node {
  SavedTensor mask{this};  // the forward's scale per element: 0 or 1/(1-p)
  const char* name() const override { return "DropoutBackward"; }
  bool release_saved() override { bool had = mask.defined(); mask = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g) override { return {mul(g, mask)}; }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training) {
  if (!(p >= 0.0 && p <= 1.0)) throw ValueError(str("dropout: p must be in [0, 1], got ", p));
  if (x.defined() && x.dtype() == DType::BFloat16 && training && p != 0.0)
    return bf16_result(dropout(as_float32(x), p, training), false);
  check_floating(x, "dropout", "input", true);
  if (!training || p == 0.0) return x;
  Tensor mask = empty(x.shape(), x.dtype(), x.device());
  const int64_t n = mask.numel();
  const uint64_t seed = Generator::global().seed;
  const uint64_t base = Generator::global().reserve(uint64_t((n + 3) / 4));
  dropout_mask_kernel()(mask.device(), mask, p, seed, base);
  Tensor out;
  {
    NoGradGuard guard;
    out = mul(x, mask);
  }
  if (auto node = record<DropoutBackward>(out, {&x})) node->mask = mask;
  return out;
}

}  // namespace cgad
