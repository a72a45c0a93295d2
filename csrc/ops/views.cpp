// Views and shape ops. They are graph ops like any other (DESIGN.md habit 7): each records a
// node whose VJP maps the grad back to the input's shape.
#include <algorithm>
#include <numeric>
#include "autograd/node.h"
#include "kernels/elementwise.h"
#include "ops/ops.h"

namespace cgad {

namespace {

// Grad of a view: reshape it back.
struct ReshapeBackward : Node {
  const char* name() const override { return "ReshapeBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {reshape(g, input_shapes[0])}; }
};

struct PermuteBackward : Node {
  std::vector<int64_t> inverse;
  const char* name() const override { return "PermuteBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {permute(g, inverse)}; }
};

struct ExpandBackward : Node {
  const char* name() const override { return "ExpandBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {sum_to(g, input_shapes[0])}; }
};

// Grad of a strided sub-view (slice, select, narrow): zeros with g written into the same view.
struct SubviewBackward : Node {
  Shape strides;  // the view's strides within a contiguous tensor of the input's shape
  int64_t offset = 0;
  DType dtype = DType::Float32;
  const char* name() const override { return "SliceBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor gi = zeros(input_shapes[0], dtype, g.device());
    copy_kernel()(gi.device(), make_view(gi, g.shape(), strides, offset), g);
    return {gi};
  }
  bool adds_into_input() const override { return true; }
  void add_into_input(Tensor& input_grad, const Tensor& g) override {
    Tensor region = make_view(input_grad, g.shape(), strides, offset);
    add_(region, g);
  }
};

struct CatBackward : Node {
  int64_t dim = 0;
  const char* name() const override { return "CatBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override {
    std::vector<Tensor> out;
    int64_t start = 0;
    for (size_t i = 0; i < input_shapes.size(); ++i) {
      int64_t len = input_shapes[i][size_t(dim)];
      if (needs_grad(i)) out.push_back(narrow(g, dim, start, len));
      else out.emplace_back();
      start += len;
    }
    return out;
  }
};

Shape infer_shape(Shape shape, int64_t numel, const char* op) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw ValueError(str(op, ": only one dimension can be -1, got ", shape_str(shape)));
      infer = int64_t(i);
    } else if (shape[i] < 0) {
      throw ValueError(str(op, ": invalid size ", shape[i], " in shape ", shape_str(shape)));
    } else {
      if (shape[i] != 0 && known > INT64_MAX / shape[i])
        throw ValueError(str(op, ": shape ", shape_str(shape), " has too many elements"));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel % known != 0)
      throw ValueError(str(op, ": shape ", shape_str(shape), " is invalid for input of size ", numel));
    shape[size_t(infer)] = numel / known;
  } else if (known != numel) {
    throw ValueError(str(op, ": shape ", shape_str(shape), " is invalid for input of size ", numel));
  }
  return shape;
}

// Strides that view t's data with `shape` without a copy, or false (torch's computeStride).
bool view_strides(const Tensor& t, const Shape& shape, Shape& out) {
  const Shape& os = t.shape();
  const Shape& ost = t.strides();
  out.assign(shape.size(), 0);
  if (t.numel() == 0 || t.dim() == 0) { out = contiguous_strides(shape); return true; }
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t chunk_base_stride = ost.empty() ? 1 : ost.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = int64_t(os.size()) - 1; td >= 0; --td) {
    tensor_numel *= os[td];
    if (td == 0 || (os[td - 1] != 1 && ost[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) {
        chunk_base_stride = ost[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor view_impl(const Tensor& t, const Shape& shape, const Shape& strides) {
  Tensor out = make_view(t, shape, strides, t.impl()->offset);
  record<ReshapeBackward>(out, {&t});
  return out;
}

}  // namespace

Tensor view(const Tensor& t, Shape shape) {
  shape = infer_shape(std::move(shape), t.numel(), "view");
  Shape st;
  if (!view_strides(t, shape, st))
    throw RuntimeError(str("view: shape ", shape_str(shape), " is not compatible with the input's strides (shape ",
                           shape_str(t.shape()), "); use reshape"));
  return view_impl(t, shape, st);
}

Tensor reshape(const Tensor& t, Shape shape) {
  shape = infer_shape(std::move(shape), t.numel(), "reshape");
  Shape st;
  if (view_strides(t, shape, st)) return view_impl(t, shape, st);
  return view_impl(clone(t), shape, contiguous_strides(shape));
}

Tensor permute(const Tensor& t, std::vector<int64_t> dims) {
  const int64_t nd = t.dim();
  if (int64_t(dims.size()) != nd)
    throw ValueError(str("permute: expected ", nd, " dims for a tensor of shape ", shape_str(t.shape()), ", got ", dims.size()));
  std::vector<bool> seen(size_t(nd), false);
  Shape shape(static_cast<size_t>(nd)), strides(static_cast<size_t>(nd));
  std::vector<int64_t> inverse(static_cast<size_t>(nd));
  for (int64_t i = 0; i < nd; ++i) {
    int64_t d = wrap_dim(dims[i], nd, "permute");
    if (seen[d]) throw ValueError(str("permute: dim ", dims[i], " is repeated"));
    seen[d] = true;
    shape[i] = t.shape()[d];
    strides[i] = t.strides()[d];
    inverse[d] = i;
  }
  Tensor out = make_view(t, shape, strides, t.impl()->offset);
  if (auto n = record<PermuteBackward>(out, {&t})) n->inverse = inverse;
  return out;
}

Tensor transpose(const Tensor& t, int64_t d0, int64_t d1) {
  const int64_t nd = t.dim();
  std::vector<int64_t> dims(size_t(std::max<int64_t>(nd, 0)));
  std::iota(dims.begin(), dims.end(), 0);
  if (nd == 0) {  // torch allows transpose(0, 0)/(-1, -1) of a scalar
    wrap_dim(d0, nd, "transpose");
    wrap_dim(d1, nd, "transpose");
    return permute(t, {});
  }
  std::swap(dims[size_t(wrap_dim(d0, nd, "transpose"))], dims[size_t(wrap_dim(d1, nd, "transpose"))]);
  return permute(t, dims);
}

Tensor unsqueeze(const Tensor& t, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim() + 1, "unsqueeze");
  Shape shape = t.shape(), strides = t.strides();
  int64_t st = d < t.dim() ? shape[d] * strides[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, st);
  return view_impl(t, shape, strides);
}

Tensor squeeze(const Tensor& t, std::optional<int64_t> dim) {
  Shape shape, strides;
  int64_t only = dim ? wrap_dim(*dim, t.dim(), "squeeze") : -1;
  for (int64_t i = 0; i < t.dim(); ++i) {
    bool drop = t.shape()[i] == 1 && (only < 0 || only == i);
    if (!drop) {
      shape.push_back(t.shape()[i]);
      strides.push_back(t.strides()[i]);
    }
  }
  return view_impl(t, shape, strides);
}

Tensor expand(const Tensor& t, Shape shape) {
  if (shape.size() < size_t(t.dim()))
    throw ValueError(str("expand: cannot expand shape ", shape_str(t.shape()), " to ", shape_str(shape), " (fewer dims)"));
  const size_t off = shape.size() - size_t(t.dim());
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < off) {
      if (shape[i] < 0) throw ValueError(str("expand: -1 is not allowed for a new leading dim in ", shape_str(shape)));
      continue;
    }
    int64_t s = t.shape()[i - off];
    if (shape[i] == -1) shape[i] = s;
    if (s == shape[i]) strides[i] = t.strides()[i - off];
    else if (s != 1) throw ValueError(str("expand: cannot expand shape ", shape_str(t.shape()), " to ", shape_str(shape)));
  }
  numel_of(shape);
  Tensor out = make_view(t, shape, strides, t.impl()->offset);
  record<ExpandBackward>(out, {&t});
  return out;
}

Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t stop, int64_t step) {
  if (t.dim() == 0) throw IndexError("slice: cannot slice a 0-d tensor");
  int64_t d = wrap_dim(dim, t.dim(), "slice");
  if (step <= 0) throw ValueError(str("slice: step must be positive, got ", step));
  const int64_t n = t.shape()[d];
  auto clampi = [n](int64_t i) { return i < 0 ? std::max<int64_t>(i + n, 0) : std::min(i, n); };
  start = clampi(start);
  stop = std::max(clampi(stop), start);
  Shape shape = t.shape(), strides = t.strides();
  shape[d] = stop > start ? (stop - start - 1) / step + 1 : 0;  // no overflow for a huge step
  if (shape[d] > 1) strides[d] *= step;
  const int64_t rel = start * t.strides()[d];
  Tensor out = make_view(t, shape, strides, t.impl()->offset + rel);
  if (auto node = record<SubviewBackward>(out, {&t})) {
    Shape cst = contiguous_strides(t.shape());
    node->strides = cst;
    if (shape[d] > 1) node->strides[d] *= step;
    node->offset = start * cst[d];
    node->dtype = t.dtype();
  }
  return out;
}

Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  int64_t d = wrap_dim(dim, t.dim(), "narrow");
  const int64_t n = t.shape()[d];
  if (start < 0) start += n;
  if (start < 0 || length < 0 || start + length > n)
    throw IndexError(str("narrow: start ", start, " and length ", length, " are out of range for dim ", dim, " of size ", n));
  return slice(t, d, start, start + length, 1);
}

Tensor select(const Tensor& t, int64_t dim, int64_t index) {
  if (t.dim() == 0) throw IndexError("select: cannot index a 0-d tensor");
  int64_t d = wrap_dim(dim, t.dim(), "select");
  const int64_t n = t.shape()[d];
  if (index < -n || index >= n)
    throw IndexError(str("index ", index, " is out of bounds for dim ", d, " with size ", n));
  if (index < 0) index += n;
  Shape shape = t.shape(), strides = t.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  Tensor out = make_view(t, shape, strides, t.impl()->offset + index * t.strides()[d]);
  if (auto node = record<SubviewBackward>(out, {&t})) {
    Shape cst = contiguous_strides(t.shape());
    node->offset = index * cst[d];
    cst.erase(cst.begin() + d);
    node->strides = cst;
    node->dtype = t.dtype();
  }
  return out;
}

std::vector<Tensor> split(const Tensor& t, std::vector<int64_t> sizes, int64_t dim) {
  int64_t d = wrap_dim(dim, t.dim(), "split");
  int64_t total = 0;
  for (auto s : sizes) {
    if (s < 0) throw ValueError(str("split: sizes must be non-negative, got ", s));
    total += s;
  }
  if (total != t.shape()[d])
    throw ValueError(str("split: sizes sum to ", total, " but dim ", dim, " has size ", t.shape()[d]));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (auto s : sizes) {
    out.push_back(narrow(t, d, start, s));
    start += s;
  }
  return out;
}

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  if (ts.empty()) throw ValueError("cat: expected a non-empty list of tensors");
  const Tensor& first = ts[0];
  if (first.dim() == 0) throw ValueError("cat: zero-dimensional tensors cannot be concatenated");
  int64_t d = wrap_dim(dim, first.dim(), "cat");
  DType dt = first.dtype();
  Shape shape = first.shape();
  shape[d] = 0;
  for (const Tensor& t : ts) {
    if (t.dim() != first.dim())
      throw ValueError(str("cat: tensors must have the same number of dims, got ", shape_str(first.shape()), " and ", shape_str(t.shape())));
    for (int64_t i = 0; i < t.dim(); ++i)
      if (i != d && t.shape()[i] != first.shape()[i])
        throw ValueError(str("cat: sizes must match except in dim ", d, ", got ", shape_str(first.shape()), " and ", shape_str(t.shape())));
    check_same_device(first, t, "cat");
    dt = promote(dt, t.dtype());
    shape[d] += t.shape()[d];
  }
  Tensor out = empty(shape, dt, first.device());
  int64_t start = 0;
  for (const Tensor& t : ts) {
    Shape st = out.strides();
    copy_kernel()(out.device(), make_view(out, t.shape(), st, start * st[d]), t);
    start += t.shape()[d];
  }
  if (GradMode::is_enabled()) {
    bool any = false;
    for (const Tensor& t : ts) any = any || t.requires_grad();
    if (any) {
      auto n = std::make_shared<CatBackward>();
      n->seq = next_sequence_nr();
      n->dim = d;
      for (const Tensor& t : ts) {
        n->next.push_back(grad_edge(t));
        n->input_shapes.push_back(t.shape());
      }
      out.impl()->grad_fn = n;
      out.impl()->requires_grad = true;
    }
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  if (ts.empty()) throw ValueError("stack: expected a non-empty list of tensors");
  int64_t d = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (const Tensor& t : ts) {
    if (t.shape() != ts[0].shape())
      throw ValueError(str("stack: expected tensors of equal shape, got ", shape_str(ts[0].shape()), " and ", shape_str(t.shape())));
    us.push_back(unsqueeze(t, d));
  }
  return cat(us, d);
}

}  // namespace cgad
