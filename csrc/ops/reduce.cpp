// Reductions: sum, mean, max, argmax, topk, sum_to. The reduced dims are moved last and the
// data made contiguous, so every reduction walks rows of a (rows, cols) matrix in a fixed order.
#include <algorithm>
#include <cmath>
#include "autograd/node.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "ops/autocast.h"
#include "ops/ops.h"

namespace cgad {

CGAD_DEFINE_KERNEL(sum_rows_kernel, void(const Tensor&, const Tensor&, int64_t, int64_t));
CGAD_DEFINE_KERNEL(column_sums_kernel, void(const Tensor&, const Tensor&, int64_t, int64_t));
CGAD_DEFINE_KERNEL(max_rows_kernel, void(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t));
CGAD_DEFINE_KERNEL(max_backward_kernel, void(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t));
CGAD_DEFINE_KERNEL(topk_rows_kernel, void(const Tensor&, const Tensor&, const Tensor&, int64_t, int64_t, int64_t));

namespace {

struct Plan {
  std::vector<bool> reduced;  // per input dim
  Shape keep_shape;           // output shape with keepdim=true
  Shape out_shape;            // output shape as requested
  Tensor rows;                // contiguous (rows, cols) data, unless `leading`
  int64_t nrows = 1, ncols = 1;
  bool leading = false;       // t is contiguous and only its leading dims are reduced
};

// allow_leading: the caller can reduce leading dims in place (column sums), so no copy is made.
Plan plan_reduce(const Tensor& t, std::vector<int64_t> dims, bool keepdim, const char* op,
                 bool allow_leading = false) {
  Plan p;
  const int64_t nd = t.dim();
  p.reduced.assign(size_t(nd), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, nd, op);
    if (nd == 0) continue;
    if (p.reduced[w]) throw ValueError(str(op, ": dim ", d, " appears more than once"));
    p.reduced[w] = true;
  }
  std::vector<int64_t> perm;
  for (int64_t i = 0; i < nd; ++i) if (!p.reduced[i]) perm.push_back(i);
  for (int64_t i = 0; i < nd; ++i) if (p.reduced[i]) perm.push_back(i);
  for (int64_t i = 0; i < nd; ++i) {
    p.keep_shape.push_back(p.reduced[i] ? 1 : t.shape()[i]);
    if (!p.reduced[i]) p.nrows *= t.shape()[i];
    else p.ncols *= t.shape()[i];
    if (!p.reduced[i] || keepdim) p.out_shape.push_back(p.reduced[i] ? 1 : t.shape()[i]);
  }
  int64_t n_lead = 0;
  while (n_lead < nd && p.reduced[size_t(n_lead)]) ++n_lead;
  const bool prefix = n_lead > 0 && n_lead < nd &&
                      std::none_of(p.reduced.begin() + n_lead, p.reduced.end(), [](bool r) { return r; });
  if (allow_leading && prefix && t.is_contiguous()) {
    p.leading = true;
    return p;
  }
  Shape ps, pst;
  for (int64_t i : perm) { ps.push_back(t.shape()[i]); pst.push_back(t.strides()[i]); }
  p.rows = contiguous_data(make_view(t, ps, pst, t.impl()->offset));
  return p;
}

struct SumBackward : Node {
  Shape keep_shape;
  double scale = 1.0;  // 1/count for mean
  const char* name() const override { return scale == 1.0 ? "SumBackward" : "MeanBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gg = reshape(g, keep_shape);
    if (scale != 1.0) gg = mul(gg, full({}, scale, g.dtype(), g.device()));
    return {expand(gg, input_shapes[0])};
  }
};

Tensor sum_impl(const Tensor& t, std::vector<int64_t> dims, bool keepdim, bool is_mean) {
  const char* op = is_mean ? "mean" : "sum";
  if (is_mean && !is_floating(t.dtype()))
    throw TypeError(str("mean: expected a floating point tensor, got ", dtype_name(t.dtype()), "; convert with .float()"));
  // Under autocast a bfloat16 sum or mean is a float32 op (DESIGN.md's op table); the cast is
  // a graph op, so the grad comes back to t in bfloat16.
  if (t.dtype() == DType::BFloat16 && autocast_enabled(t.device()))
    return sum_impl(to_dtype(t, DType::Float32), std::move(dims), keepdim, is_mean);
  DType odt = is_floating(t.dtype()) ? t.dtype() : DType::Int64;
  // Otherwise bfloat16 is summed in float32 and rounded once at the end, as torch does.
  const DType result = odt;
  if (odt == DType::BFloat16) odt = DType::Float32;
  // Sums over leading dims of a contiguous tensor (gradients of broadcast adds) are column
  // sums of the data as it lies; any other pattern moves the reduced dims last first. bf16
  // takes the column path too: a sum straight into a bf16 result (the kernel accumulates bf16
  // columns in float32 and rounds once), a mean from a float32 copy (one contiguous pass), so
  // that it rounds once, after the scale.
  // (an int32 sum is an int64 result: it goes through the widening copy)
  Plan p = plan_reduce(t, std::move(dims), keepdim, op, t.dtype() == odt || result == DType::BFloat16);
  const bool leading = p.leading;
  Tensor src;
  if (leading) src = result == DType::BFloat16 && is_mean ? cast(t, odt) : t;
  else src = cast(p.rows, odt);
  Tensor out = empty(p.out_shape, src.dtype(), t.device());
  if (leading) column_sums_kernel()(out.device(), out, src, p.ncols, p.nrows);
  else sum_rows_kernel()(out.device(), out, src, p.nrows, p.ncols);
  const double scale = is_mean ? 1.0 / double(p.ncols) : 1.0;
  if (is_mean) {
    if (p.ncols == 0) fill_kernel()(out.device(), out, NAN);
    else mul_scalar_(out, scale);
  }
  out = cast(out, result);
  if (auto n = record<SumBackward>(out, {&t})) {
    n->keep_shape = p.keep_shape;
    n->scale = scale;
  }
  return out;
}

// Per row: the max value and its first index.
void max_rows(const Plan& p, Tensor& values, Tensor& indices, const char* op) {
  if (p.ncols == 0) throw ValueError(str(op, ": cannot reduce over an empty dimension"));
  Tensor src = p.rows;
  DType dt = src.dtype() == DType::BFloat16 ? DType::Float32 : src.dtype();
  src = cast(src, dt);
  values = empty({p.nrows}, dt, src.device());
  indices = empty({p.nrows}, DType::Int64, src.device());
  max_rows_kernel()(src.device(), values, indices, src, p.nrows, p.ncols);
}

struct MaxAllBackward : Node {
  SavedTensor x{this}, out{this};
  const char* name() const override { return "MaxBackward"; }
  bool release_saved() override { bool had = x.defined(); x = out = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g) override {
    // Ties share the grad evenly, as torch's max() does.
    Tensor mask = cast(compare(x, out, CompareOp::EQ), g.dtype());
    return {mul(mask, div(g, sum(mask, {}, false)))};
  }
};

struct MaxDimBackward : Node {
  SavedTensor indices{this};  // keepdim shape
  int64_t dim = 0;
  Shape keep_shape;
  DType dtype = DType::Float32;
  const char* name() const override { return "MaxBackward"; }
  bool release_saved() override { bool had = indices.defined(); indices = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& gin) override {
    Tensor g = cast(contiguous_data(reshape(gin, keep_shape)), dtype);
    Tensor gi = zeros(input_shapes[0], dtype, g.device());
    const Shape& s = input_shapes[0];
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < dim; ++i) outer *= s[i];
    for (size_t i = size_t(dim) + 1; i < s.size(); ++i) inner *= s[i];
    const int64_t n = s.empty() ? 1 : s[dim];
    max_backward_kernel()(gi.device(), gi, g, indices, outer, n, inner);
    return {gi};
  }
};

// Forward-only ops keep the graph honest: backward through them raises instead of silently
// dropping the grad.
struct ForwardOnlyBackward : Node {
  const char* op = "";
  const char* name() const override { return op; }
  std::vector<Tensor> backward(const Tensor&) override {
    throw RuntimeError(str(op, ": the derivative is not implemented (forward only); detach() its input"));
  }
};

}  // namespace

Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim) { return sum_impl(t, std::move(dims), keepdim, false); }
Tensor mean(const Tensor& t, std::vector<int64_t> dims, bool keepdim) { return sum_impl(t, std::move(dims), keepdim, true); }

Tensor max_all(const Tensor& t) {
  if (t.numel() == 0) throw ValueError("max: cannot reduce an empty tensor (no identity)");
  Plan p = plan_reduce(t, {}, false, "max");
  Tensor values, indices;
  max_rows(p, values, indices, "max");
  Tensor out = cast(reshape(values.detach(), {}), t.dtype());
  if (auto n = record<MaxAllBackward>(out, {&t})) {
    n->x = t;
    n->out = out.detach();
  }
  return out;
}

std::pair<Tensor, Tensor> max_dim(const Tensor& t, int64_t dim, bool keepdim) {
  int64_t d = wrap_dim(dim, t.dim(), "max");
  Plan p = plan_reduce(t, {d}, keepdim, "max");
  Tensor values, indices;
  max_rows(p, values, indices, "max");
  values = cast(values, t.dtype());
  Tensor v = make_view(values, p.out_shape, contiguous_strides(p.out_shape), 0);
  Tensor ix = make_view(indices, p.out_shape, contiguous_strides(p.out_shape), 0);
  if (auto n = record<MaxDimBackward>(v, {&t})) {
    n->indices = indices;
    n->dim = t.dim() == 0 ? 0 : d;
    n->keep_shape = p.keep_shape;
    n->dtype = t.dtype();
  }
  return {v, ix};
}

Tensor argmax(const Tensor& t, std::optional<int64_t> dim, bool keepdim) {
  if (!dim) {
    if (t.numel() == 0) throw ValueError("argmax: cannot reduce an empty tensor");
    Plan p = plan_reduce(t, {}, keepdim, "argmax");
    Tensor values, indices;
    max_rows(p, values, indices, "argmax");
    return make_view(indices, p.out_shape, contiguous_strides(p.out_shape), 0);
  }
  return max_dim(t.detach(), *dim, keepdim).second;
}

std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim(), "topk");
  const int64_t n = t.dim() == 0 ? 1 : t.shape()[d];
  if (k < 0 || k > n) throw ValueError(str("topk: k (", k, ") is out of range for dim ", dim, " of size ", n));
  Plan p = plan_reduce(t, {d}, true, "topk");
  DType dt = t.dtype() == DType::BFloat16 ? DType::Float32 : t.dtype();
  Tensor src = cast(p.rows, dt);
  Tensor vals = empty({p.nrows, k}, dt, t.device()), idx = empty({p.nrows, k}, DType::Int64, t.device());
  topk_rows_kernel()(t.device(), vals, idx, src, p.nrows, n, k);
  // (rows, k) with the topk dim last; move it back to `d`.
  Shape shape = p.keep_shape;
  if (t.dim() > 0) shape[d] = k;
  Shape moved;  // shape with dim d moved last
  for (int64_t i = 0; i < t.dim(); ++i) if (i != d) moved.push_back(shape[i]);
  moved.push_back(k);
  std::vector<int64_t> back(size_t(t.dim()));
  for (int64_t i = 0, j = 0; i < t.dim(); ++i) back[i] = i == d ? t.dim() - 1 : j++;
  Tensor v, ix;
  {
    NoGradGuard ng;
    v = t.dim() == 0 ? reshape(vals, {}) : contiguous(permute(reshape(vals, moved), back));
    ix = t.dim() == 0 ? reshape(idx, {}) : contiguous(permute(reshape(idx, moved), back));
  }
  v = cast(v, t.dtype()).detach();
  ix = ix.detach();
  if (auto node = record<ForwardOnlyBackward>(v, {&t})) node->op = "topk";
  return {v, ix};
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t lead = t.dim() - int64_t(shape.size());
  if (lead < 0) throw ValueError(str("sum_to: cannot reduce shape ", shape_str(t.shape()), " to ", shape_str(shape)));
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i < lead) dims.push_back(i);
    else if (shape[i - lead] == 1 && t.shape()[i] != 1) dims.push_back(i);
    else if (shape[i - lead] != t.shape()[i])
      throw ValueError(str("sum_to: cannot reduce shape ", shape_str(t.shape()), " to ", shape_str(shape)));
  }
  if (dims.empty()) return reshape(t, shape);
  return reshape(sum(t, dims, true), shape);
}

}  // namespace cgad
