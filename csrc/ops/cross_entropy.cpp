// cross_entropy on logits (N, V) with targets (N,), or (B, T, V) with (B, T): classes on the last
// dim, mean over the non-ignored targets. The forward saves each row's log-sum-exp (in
// stats_dtype), from which the backward forms softmax - onehot. Rows are N = B*T.
// Kernels: kernels/nn.h.
#include "kernels/nn.h"
#include "ops/autocast.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(cross_entropy_forward_kernel, void(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t));
CGAD_DEFINE_KERNEL(cross_entropy_backward_kernel, void(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                                       const Tensor&, int64_t));

namespace {

struct CrossEntropyBackward : Node {
  SavedTensor logits{this};   // the logits' shape, contiguous
  SavedTensor lse{this};      // (N,) log-sum-exp of each row
  SavedTensor targets{this};  // (N,) int64
  int64_t ignore_index = -100;
  Shape in_shape;
  const char* name() const override { return "CrossEntropyBackward"; }
  bool release_saved() override {
    bool had = logits.defined();
    logits = lse = targets = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    // When nothing but this node holds the logits (the caller dropped them) and the graph is
    // not retained, the grad overwrites them in place: (B, T, V) logits are the largest
    // buffer of a GPT-2 step, and this saves a second one at the step's peak.
    const bool reuse = final_use && logits.impl_ptr().use_count() == 1 &&
                       logits.impl()->storage.use_count() == 1 && logits.is_contiguous();
    Tensor dx = reuse ? make_view(logits, in_shape, contiguous_strides(in_shape), logits.impl()->offset)
                      : empty(in_shape, logits.dtype(), logits.device());
    cross_entropy_backward_kernel()(logits.device(), dx, logits, lse, targets, cast(g, DType::Float64), ignore_index);
    return {dx, Tensor()};
  }
};

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, int64_t ignore_index) {
  check_floating(logits_in, "cross_entropy", "logits", true);
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
  Tensor targets = contiguous_data(cast(targets_in, DType::Int64));
  Tensor x = contiguous_data(logits_in);
  // bfloat16 logits are read as they are (no float32 copy of the largest activation of a GPT-2
  // step): log-sum-exp, lse and the loss in float32, the grad written in bf16.
  Tensor loss = empty({}, stats_dtype(x.dtype()), x.device());
  Tensor lse = empty({N}, stats_dtype(x.dtype()), x.device());
  cross_entropy_forward_kernel()(x.device(), loss, lse, x, targets, ignore_index);
  if (auto n = record<CrossEntropyBackward>(loss, {&logits_in, &targets_in})) {
    n->logits = x.detach();
    n->lse = lse;
    n->targets = targets.detach();
    n->ignore_index = ignore_index;
    n->in_shape = ls;
  }
  return x.dtype() == DType::BFloat16 ? bf16_result(loss, true) : loss;
}

}  // namespace cgad
