// add, sub, mul, div, pow with broadcasting and type promotion, and their VJPs.
#include "autograd/node.h"
#include "core/shape.h"
#include "kernels/elementwise.h"
#include "ops/elementwise.h"

namespace cgad {

CGAD_DEFINE_KERNEL(binary_kernel, void(const Tensor&, const Tensor&, const Tensor&, BinOp));
CGAD_DEFINE_KERNEL(add_inplace_kernel, void(const Tensor&, const Tensor&));
CGAD_DEFINE_KERNEL(mul_scalar_inplace_kernel, void(const Tensor&, double));

namespace {

Tensor binary_forward(const Tensor& a, const Tensor& b, BinOp op) {
  const char* name = op_name(op);
  check_same_device(a, b, name);
  DType dt = result_type(a, b);
  if (op == BinOp::Div && !is_floating(dt)) dt = DType::Float32;  // `/` is true division
  if (dt == DType::Bool && (op == BinOp::Sub || op == BinOp::Div || op == BinOp::Pow))
    throw TypeError(str(name, ": not supported for bool tensors"));
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, dt, a.device());
  binary_kernel()(out.device(), out, cast(a, dt), cast(b, dt), op);
  return out;
}

struct BinaryBackward : Node {
  BinOp op = BinOp::Add;
  SavedTensor a{this}, b{this}, out{this};  // saved only where the VJP needs them
  DType a_dtype = DType::Float32, b_dtype = DType::Float32;
  const char* name() const override {
    switch (op) {
      case BinOp::Add: return "AddBackward";
      case BinOp::Sub: return "SubBackward";
      case BinOp::Mul: return "MulBackward";
      case BinOp::Div: return "DivBackward";
      case BinOp::Pow: return "PowBackward";
    }
    return "BinaryBackward";
  }
  bool release_saved() override {
    bool had = a.defined() || b.defined() || out.defined();
    a = b = out = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor ga, gb;
    const bool na = needs_grad(0), nb = needs_grad(1);
    switch (op) {
      case BinOp::Add:
        if (na) ga = g;
        if (nb) gb = g;
        break;
      case BinOp::Sub:
        if (na) ga = g;
        if (nb) gb = cgad::neg(g);
        break;
      case BinOp::Mul:
        if (na) ga = mul(g, b);
        if (nb) gb = mul(g, a);
        break;
      case BinOp::Div:
        if (na) ga = div(g, b);
        if (nb) gb = neg(div(mul(g, out), b));
        break;
      case BinOp::Pow:
        // d(a^b)/da = b * a^(b-1);  d(a^b)/db = a^b * log(a)
        if (na) ga = mul(g, mul(b, cgad::pow(a, sub(b, full({}, 1.0, b.dtype(), b.device())))));
        if (nb) gb = mul(g, mul(out, cgad::log(cast(a, g.dtype()))));  // log of an int base in the result dtype
        break;
    }
    if (ga.defined()) ga = reduce_grad(ga, input_shapes[0], a_dtype);
    if (gb.defined()) gb = reduce_grad(gb, input_shapes[1], b_dtype);
    return {ga, gb};
  }
};

Tensor binary(const Tensor& a, const Tensor& b, BinOp op) {
  Tensor out = binary_forward(a, b, op);
  if (auto n = record<BinaryBackward>(out, {&a, &b})) {
    n->op = op;
    n->a_dtype = a.dtype();
    n->b_dtype = b.dtype();
    const bool na = n->needs_grad(0), nb = n->needs_grad(1);
    if (op == BinOp::Mul) {
      if (nb) n->a = a;
      if (na) n->b = b;
    } else if (op == BinOp::Div) {
      n->b = b;
      if (nb) n->out = out.detach();
    } else if (op == BinOp::Pow) {
      n->a = a;
      n->b = b;
      if (nb) n->out = out.detach();
    }
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, BinOp::Add); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, BinOp::Sub); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, BinOp::Mul); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(a, b, BinOp::Div); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(a, b, BinOp::Pow); }

void add_(Tensor& a, const Tensor& b) {
  check_same_device(a, b, "add_");
  Shape shape = broadcast_shapes(a.shape(), b.shape(), "add_");
  if (shape != a.shape())
    throw ValueError(str("add_: cannot add shape ", shape_str(b.shape()), " into shape ", shape_str(a.shape()), " in place"));
  add_inplace_kernel()(a.device(), a, cast(b, a.dtype()));
  a.bump_version();
}

void mul_scalar_(Tensor& a, double s) {
  if (!is_floating(a.dtype())) throw TypeError(str("mul_: expected a floating point tensor, got ", dtype_name(a.dtype())));
  mul_scalar_inplace_kernel()(a.device(), a, s);
  a.bump_version();
}

}  // namespace cgad
