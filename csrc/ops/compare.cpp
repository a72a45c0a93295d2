// Comparisons (bool results, no grad), masked_fill and where.
#include "autograd/node.h"
#include "ops/elementwise.h"

namespace cgad {

Tensor compare(const Tensor& a, const Tensor& b, CompareOp op) {
  DType dt = result_type(a, b);
  if (dt == DType::BFloat16) dt = DType::Float32;
  return dispatch_numeric(dt, "compare", [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case CompareOp::EQ: return binary_map<T, bool>(a, b, dt, DType::Bool, "eq", [](T x, T y) { return x == y; });
      case CompareOp::NE: return binary_map<T, bool>(a, b, dt, DType::Bool, "ne", [](T x, T y) { return x != y; });
      case CompareOp::LT: return binary_map<T, bool>(a, b, dt, DType::Bool, "lt", [](T x, T y) { return x < y; });
      case CompareOp::LE: return binary_map<T, bool>(a, b, dt, DType::Bool, "le", [](T x, T y) { return x <= y; });
      case CompareOp::GT: return binary_map<T, bool>(a, b, dt, DType::Bool, "gt", [](T x, T y) { return x > y; });
      case CompareOp::GE: break;
    }
    return binary_map<T, bool>(a, b, dt, DType::Bool, "ge", [](T x, T y) { return x >= y; });
  });
}

namespace {

struct WhereBackward : Node {
  Tensor cond;
  DType a_dtype = DType::Float32, b_dtype = DType::Float32;
  const char* name() const override { return "WhereBackward"; }
  bool release_saved() override {
    bool had = cond.defined();
    cond = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor zero = zeros({}, g.dtype());
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
  Shape shape = cpu::broadcast_shapes(cpu::broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  Tensor out = empty(shape, dt, a.device());
  cpu::copy(out, b);
  Tensor av = cast(a, dt);
  dispatch_all(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* po = out.data<T>();
    const T* pa = av.data<T>();
    const bool* pc = cond.data<bool>();
    cpu::StridedIter<3> it{shape, {out.strides(), cpu::broadcast_strides(cond, shape), cpu::broadcast_strides(av, shape)}};
    it.run([&](const std::array<int64_t, 3>& o, int64_t n, const std::array<int64_t, 3>& s) {
      for (int64_t k = 0; k < n; ++k)
        if (pc[o[1] + k * s[1]]) po[o[0] + k * s[0]] = pa[o[2] + k * s[2]];
    });
  });
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
  Shape shape = cpu::broadcast_shapes(t.shape(), mask.shape(), "masked_fill");
  if (shape != t.shape())
    throw ValueError(str("masked_fill: mask of shape ", shape_str(mask.shape()), " does not broadcast to the tensor's shape ", shape_str(t.shape())));
  if (is_integral(t.dtype())) {  // as torch: NaN, inf and out-of-range values are errors, not UB
    const bool i32 = t.dtype() == DType::Int32;  // truncation toward zero must land in range
    if (!(i32 ? value > -2147483649.0 && value < 2147483648.0 : value >= -9223372036854775808.0 && value < 9223372036854775808.0))
      throw ValueError(str("masked_fill: value ", value, " cannot be converted to ", dtype_name(t.dtype()), " without overflow"));
  }
  return where(mask, full({}, value, t.dtype(), t.device()), t);
}

}  // namespace cgad
