// layer_norm over the trailing normalized_shape, with its VJP. The forward saves each row's
// mean and rstd (in stats_dtype) for the backward. Rows: N = numel / C, C = prod(normalized_shape).
// Kernels: kernels/nn.h.
#include "kernels/nn.h"
#include "ops/autocast.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(layer_norm_forward_kernel, void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                                   const Tensor&, const Tensor&, int64_t, int64_t, double));
CGAD_DEFINE_KERNEL(layer_norm_backward_kernel, void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                                    const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                                    int64_t, int64_t));

namespace {

struct LayerNormBackward : Node {
  SavedTensor x{this}, w{this}, mean{this}, rstd{this};  // x (N, C) contiguous; w (C,) or undefined; mean, rstd (N,)
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
    layer_norm_backward_kernel()(x.device(), dx, dw, db, g, x, w, mean, rstd, N, C);
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
  if (x_in.defined() && x_in.dtype() == DType::BFloat16)  // statistics and arithmetic in float32
    return bf16_result(layer_norm(as_float32(x_in), ns, as_float32(w_in), as_float32(b_in), eps), true);
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
  const DType sdt = stats_dtype(x.dtype());
  Tensor mean = empty({N}, sdt, x.device()), rstd = empty({N}, sdt, x.device());
  layer_norm_forward_kernel()(x.device(), y, mean, rstd, x, w, b, N, C, eps);
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
