// scaled_dot_product_attention, flash-style in what it keeps: the forward saves only each query's
// log-sum-exp (float32, float64 for float64 inputs), never the (L, S) probabilities, and the
// backward recomputes them. Causal masking is top-left aligned as in torch (query i sees keys
// 0..i). Shapes: q (H.., L, E), k (H.., S, E), v (H.., S, Ev), out (H.., L, Ev); H = product of
// the leading (batch, head) dims. Kernels: kernels/attention.h.
#include <algorithm>
#include <cmath>
#include <vector>
#include "kernels/attention.h"
#include "ops/autocast.h"
#include "ops/nn_common.h"

namespace cgad {

CGAD_DEFINE_KERNEL(attention_forward_kernel,
                   void(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool, double));
CGAD_DEFINE_KERNEL(attention_backward_kernel,
                   void(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, const Tensor&, const Tensor&, bool, double));

namespace {

// Usable in place: the last dim contiguous (or of size <= 1).
Tensor last_dim_contiguous(const Tensor& t) {
  return t.size(-1) <= 1 || t.strides().back() == 1 ? t : contiguous_data(t);
}

// An empty tensor of `shape` laid out in memory in the dim order of `like` (by its strides):
// attention's outputs and input grads come out in their inputs' layout, so the transposes
// around attention in a GPT block cost no copies (torch's CPU flash attention does the same).
Tensor empty_in_layout_of(const Shape& shape, const Tensor& like) {
  const size_t nd = shape.size();
  std::vector<size_t> order(nd);  // dims from outermost to innermost in memory
  for (size_t i = 0; i < nd; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return like.strides()[a] > like.strides()[b]; });
  if (nd == 0 || order.back() != nd - 1) return empty(shape, like.dtype(), like.device());
  Shape mem_shape, strides(nd);
  for (size_t i : order) mem_shape.push_back(shape[i]);
  Tensor buf = empty(mem_shape, like.dtype(), like.device());
  int64_t st = 1;
  for (size_t i = nd; i-- > 0;) {
    strides[order[i]] = st;
    st *= std::max<int64_t>(shape[order[i]], 1);
  }
  return make_view(buf, shape, strides, 0);
}

struct AttentionBackward : Node {
  SavedTensor q{this}, k{this}, v{this}, out{this}, lse{this};  // last dims contiguous (views of the inputs); lse (H.., L)
  AttentionDims d;
  bool causal = false;
  double scale = 1.0;
  const char* name() const override { return "ScaledDotProductAttentionBackward"; }
  bool release_saved() override {
    bool had = q.defined();
    q = k = v = out = lse = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = last_dim_contiguous(g_in);
    Tensor dq = empty_in_layout_of(q.shape(), q), dk = empty_in_layout_of(k.shape(), k),
           dv = empty_in_layout_of(v.shape(), v);
    if (d.H * d.L * d.S == 0) {  // nothing attended: the grads are zero
      for (Tensor* t : {&dq, &dk, &dv}) *t = zeros(t->shape(), t->dtype(), t->device());
      return {dq, dk, dv};
    }
    attention_backward_kernel()(q.device(), dq, dk, dv, g, q, k, v, out, lse, causal, scale);
    return {dq, dk, dv};
  }
};

AttentionDims check_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const char* op = "scaled_dot_product_attention";
  check_floating(q, op, "q", true);
  check_floating(k, op, "k", true);
  check_floating(v, op, "v", true);
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  check_same_device(q, k, op);
  check_same_device(q, v, op);
  auto bad = [&](const char* why) {
    return ValueError(str(op, ": ", why, "; got q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
                          shape_str(v.shape()), " (expected q (B, NH, L, E), k (B, NH, S, E), v (B, NH, S, Ev))"));
  };
  if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim()) throw bad("q, k and v need the same number (>= 2) of dims");
  for (int64_t i = 0; i < q.dim() - 2; ++i)
    if (k.size(i) != q.size(i) || v.size(i) != q.size(i)) throw bad("batch and head dims differ");
  if (k.size(-1) != q.size(-1)) throw bad("q and k differ in the embedding dim E");
  if (v.size(-2) != k.size(-2)) throw bad("k and v differ in the sequence dim S");
  return attention_dims(q, k, v);
}

Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, bool is_causal,
                 std::optional<double> scale_opt) {
  const AttentionDims d = check_attention(q_in, k_in, v_in);
  const double scale = scale_opt ? *scale_opt : 1.0 / std::sqrt(double(std::max<int64_t>(d.E, 1)));
  if (!std::isfinite(scale)) throw ValueError(str("scaled_dot_product_attention: scale must be finite, got ", scale));
  Tensor q = last_dim_contiguous(q_in), k = last_dim_contiguous(k_in), v = last_dim_contiguous(v_in);
  Shape oshape = q.shape();
  oshape.back() = d.Ev;
  Shape lshape(q.shape().begin(), q.shape().end() - 1);
  const DType stats = stats_dtype(q.dtype());
  Tensor out, lse;
  if (d.S == 0) {  // no keys: an empty weighted sum is zero, as torch gives (not 0/0)
    out = zeros(oshape, q.dtype(), q.device());
    lse = full(lshape, -INFINITY, stats, q.device());
  } else {
    out = empty_in_layout_of(oshape, q);
    lse = empty(lshape, stats, q.device());
    attention_forward_kernel()(q.device(), out, lse, q, k, v, is_causal, scale);
  }
  if (auto n = record<AttentionBackward>(out, {&q_in, &k_in, &v_in})) {
    n->q = q.detach();
    n->k = k.detach();
    n->v = v.detach();
    n->out = out.detach();
    n->lse = lse;
    n->d = d;
    n->causal = is_causal;
    n->scale = scale;
  }
  return out;
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, bool is_causal,
                                    std::optional<double> scale) {
  Tensor q = q_in, k = k_in, v = v_in;
  if (autocast_enabled(q.device())) {  // float32 operands join the region's dtype
    q = autocast_lower(q);
    k = autocast_lower(k);
    v = autocast_lower(v);
  }
  // bfloat16 operands run the bf16 kernel (bf16 products, float32 softmax statistics), which
  // saves its inputs and output for backward in bf16.
  return attention(q, k, v, is_causal, scale);
}

}  // namespace cgad
