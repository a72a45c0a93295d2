// GELU, exact (erf) and tanh-approximated (GPT-2), with its VJP. Kernels: kernels/nn.h.
#include "kernels/nn.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(gelu_forward_kernel, void(const Tensor&, const Tensor&, bool));
CGAD_DEFINE_KERNEL(gelu_backward_kernel, void(const Tensor&, const Tensor&, const Tensor&, bool));

namespace {

struct GeluBackward : Node {
  SavedTensor x{this};  // the forward's input, contiguous
  bool tanh_approx = false;
  const char* name() const override { return "GeluBackward"; }
  bool release_saved() override { bool had = x.defined(); x = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = contiguous_data(g_in);
    Tensor dx = empty(x.shape(), x.dtype(), x.device());
    gelu_backward_kernel()(x.device(), dx, x, g, tanh_approx);
    return {dx};
  }
};

}  // namespace

Tensor gelu(const Tensor& x_in, bool tanh_approx) {
  check_float_dtype(x_in.dtype(), "gelu", "the input", true);
  Tensor x = contiguous_data(x_in);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  gelu_forward_kernel()(x.device(), y, x, tanh_approx);
  if (auto n = record<GeluBackward>(y, {&x_in})) {
    n->x = x.detach();
    n->tanh_approx = tanh_approx;
  }
  return y;
}

}  // namespace cgad
