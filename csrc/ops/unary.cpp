// neg, abs, exp, log, tanh, sqrt, rsqrt and their VJPs. Integer inputs of the transcendental
// ops compute in float32, as torch does.
#include "autograd/node.h"
#include "kernels/elementwise.h"
#include "ops/elementwise.h"

namespace cgad {

CGAD_DEFINE_KERNEL(unary_kernel, void(const Tensor&, const Tensor&, UnOp));

namespace {

Tensor unary_forward(const Tensor& a, UnOp op) {
  const bool keeps_dtype = op == UnOp::Neg || op == UnOp::Abs;
  DType dt = a.dtype();
  if (!keeps_dtype && !is_floating(dt)) dt = DType::Float32;
  if (dt == DType::Bool) throw TypeError(str(op_name(op), ": not supported for bool tensors"));
  Tensor out = empty(a.shape(), dt, a.device());
  unary_kernel()(out.device(), out, cast(a, dt), op);
  return out;
}

struct UnaryBackward : Node {
  UnOp op = UnOp::Neg;
  SavedTensor a{this}, out{this};
  const char* name() const override {
    switch (op) {
      case UnOp::Neg: return "NegBackward";
      case UnOp::Abs: return "AbsBackward";
      case UnOp::Exp: return "ExpBackward";
      case UnOp::Log: return "LogBackward";
      case UnOp::Tanh: return "TanhBackward";
      case UnOp::Sqrt: return "SqrtBackward";
      case UnOp::Rsqrt: return "RsqrtBackward";
    }
    return "UnaryBackward";
  }
  bool release_saved() override {
    bool had = a.defined() || out.defined();
    a = out = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g) override {
    auto c = [&](double v) { return full({}, v, g.dtype(), g.device()); };
    switch (op) {
      case UnOp::Neg: return {neg(g)};
      case UnOp::Abs: {  // sign(a), with 0 at 0 as torch
        Tensor sign = sub(cast(compare(a, c(0), CompareOp::GT), g.dtype()), cast(compare(a, c(0), CompareOp::LT), g.dtype()));
        return {mul(g, sign)};
      }
      case UnOp::Exp: return {mul(g, out)};
      case UnOp::Log: return {div(g, a)};
      case UnOp::Tanh: return {mul(g, sub(c(1), mul(out, out)))};
      case UnOp::Sqrt: return {div(mul(g, c(0.5)), out)};
      case UnOp::Rsqrt: return {mul(g, mul(c(-0.5), mul(out, mul(out, out))))};
    }
    return {Tensor()};
  }
};

Tensor unary(const Tensor& a, UnOp op) {
  Tensor out = unary_forward(a, op);
  if (auto n = record<UnaryBackward>(out, {&a})) {
    n->op = op;
    if (op == UnOp::Abs || op == UnOp::Log) n->a = a;
    if (op == UnOp::Exp || op == UnOp::Tanh || op == UnOp::Sqrt || op == UnOp::Rsqrt) n->out = out.detach();
  }
  return out;
}

}  // namespace

Tensor neg(const Tensor& a) { return unary(a, UnOp::Neg); }
Tensor abs(const Tensor& a) { return unary(a, UnOp::Abs); }
Tensor exp(const Tensor& a) { return unary(a, UnOp::Exp); }
Tensor log(const Tensor& a) { return unary(a, UnOp::Log); }
Tensor tanh(const Tensor& a) { return unary(a, UnOp::Tanh); }
Tensor sqrt(const Tensor& a) { return unary(a, UnOp::Sqrt); }
Tensor rsqrt(const Tensor& a) { return unary(a, UnOp::Rsqrt); }

}  // namespace cgad
