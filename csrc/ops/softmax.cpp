// softmax and log_softmax along any dim, with their VJPs. The kernels work on contiguous rows
// of the last dim; another dim is moved there by transpose (graph ops, so nothing is cut).
// Kernels: kernels/nn.h.
#include <algorithm>
#include "kernels/nn.h"
#include "ops/autocast.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(softmax_forward_kernel, void(const Tensor&, const Tensor&, int64_t, int64_t, bool));
CGAD_DEFINE_KERNEL(softmax_backward_kernel, void(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, bool));

namespace {

struct SoftmaxBackward : Node {
  SavedTensor y{this};  // (N, C) the forward's output
  bool log = false;
  const char* name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  bool release_saved() override { bool had = y.defined(); y = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = contiguous_data(g_in);
    Tensor dx = empty(y.shape(), y.dtype(), y.device());
    const int64_t C = y.dim() ? y.size(-1) : 1, N = C ? y.numel() / C : 0;
    softmax_backward_kernel()(y.device(), dx, g, y, N, C, log);
    return {dx};
  }
};

Tensor softmax_last(const Tensor& x_in, bool log) {
  Tensor x = contiguous_data(x_in);
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  const int64_t C = x.dim() ? x.size(-1) : 1, N = C ? x.numel() / C : 0;
  softmax_forward_kernel()(x.device(), y, x, N, C, log);
  if (auto n = record<SoftmaxBackward>(y, {&x_in})) {
    n->y = y.detach();
    n->log = log;
  }
  return y;
}

Tensor softmax_any(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  if (x.dtype() == DType::BFloat16) return bf16_result(softmax_any(as_float32(x), dim, log), true);
  check_float_dtype(x.dtype(), op, "the input");
  const int64_t nd = std::max<int64_t>(x.dim(), 1);
  const int64_t d = wrap_dim(dim, nd, op);
  if (x.dim() == 0) return reshape(softmax_last(reshape(x, {1}), log), {});
  if (d == x.dim() - 1) return softmax_last(x, log);
  return transpose(softmax_last(transpose(x, d, -1), log), d, -1);
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_any(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_any(x, dim, true); }

}  // namespace cgad
