// Comparisons (bool results, no grad), masked_fill and where.
#include "autograd/node.h"
#include "core/shape.h"
#include "kernels/elementwise.h"
#include "ops/elementwise.h"

namespace cgad {

CGAD_DEFINE_KERNEL(compare_kernel, void(const Tensor&, const Tensor&, const Tensor&, CompareOp));
CGAD_DEFINE_KERNEL(where_kernel, void(const Tensor&, const Tensor&, const Tensor&));

Tensor compare(const Tensor& a, const Tensor& b, CompareOp op) {
  const char* name = op_name(op);
  check_same_device(a, b, name);
  DType dt = result_type(a, b);
  if (dt == DType::BFloat16) dt = DType::Float32;
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), name), DType::Bool, a.device());
  compare_kernel()(out.device(), out, cast(a, dt), cast(b, dt), op);
  return out;
}

namespace {

struct WhereBackward : Node {
  SavedTensor cond{this};
  DType a_dtype = DType::Float32, b_dtype = DType::Float32;
  const char* name() const override { return "WhereBackward"; }
  bool release_saved() override {
    bool had = cond.defined();
    cond = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor zero = zeros({}, g.dtype(), g.device());
    Tensor ga, gb;
    if (needs_grad(0)) ga = reduce_grad(where(cond, g, zero), input_shapes[0], a_dtype);
    if (needs_grad(1)) gb = reduce_grad(where(cond, zero, g), input_shapes[1], b_dtype);
    return {ga, gb};
  }
};

// out = cond ? a : b, all three broadcast together.
Tensor where_forward(const Tensor& cond, const Tensor& a, const Tensor& b) {
  if (cond.dtype() != DType::Bool)
    throw TypeError(str("where: the condition must be a bool tensor, got ", dtype_name(cond.dtype())));
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  DType dt = result_type(a, b);
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, dt, a.device());
  copy_kernel()(out.device(), out, b);
  where_kernel()(out.device(), out, cond, cast(a, dt));
  return out;
}

}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor out = where_forward(cond, a, b);
  if (auto n = record<WhereBackward>(out, {&a, &b})) {
    n->cond = cond;
    n->a_dtype = a.dtype();
    n->b_dtype = b.dtype();
  }
  return out;
}

Tensor masked_fill(const Tensor& t, const Tensor& mask, double value) {
  if (mask.dtype() != DType::Bool)
    throw TypeError(str("masked_fill: the mask must be a bool tensor, got ", dtype_name(mask.dtype())));
  Shape shape = broadcast_shapes(t.shape(), mask.shape(), "masked_fill");
  if (shape != t.shape())
    throw ValueError(str("masked_fill: mask of shape ", shape_str(mask.shape()), " does not broadcast to the tensor's shape ", shape_str(t.shape())));
  check_scalar_fits("masked_fill", value, t.dtype());  // as torch: NaN/inf into integers are errors, not UB
  return where(mask, full({}, value, t.dtype(), t.device()), t);
}

}  // namespace cgad
