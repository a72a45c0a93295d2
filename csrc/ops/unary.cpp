// neg, abs, exp, log, tanh, sqrt, rsqrt and their VJPs. Integer inputs of the transcendental
// ops compute in float32, as torch does.
#include <cmath>
#include "autograd/node.h"
#include "ops/elementwise.h"

namespace cgad {

namespace {

enum class UnOp { Neg, Abs, Exp, Log, Tanh, Sqrt, Rsqrt };

const char* un_name(UnOp op) {
  switch (op) {
    case UnOp::Neg: return "neg";
    case UnOp::Abs: return "abs";
    case UnOp::Exp: return "exp";
    case UnOp::Log: return "log";
    case UnOp::Tanh: return "tanh";
    case UnOp::Sqrt: return "sqrt";
    case UnOp::Rsqrt: return "rsqrt";
  }
  return "?";
}

Tensor unary_forward(const Tensor& a, UnOp op) {
  const char* name = un_name(op);
  const bool keeps_dtype = op == UnOp::Neg || op == UnOp::Abs;
  DType dt = a.dtype();
  if (!keeps_dtype && !is_floating(dt)) dt = DType::Float32;
  if (dt == DType::Bool) throw TypeError(str(name, ": not supported for bool tensors"));
  return dispatch_numeric(dt, name, [&](auto tag) -> Tensor {
    using T = typename decltype(tag)::type;
    switch (op) {
      case UnOp::Neg: return unary_map<T, T>(a, dt, dt, [](T x) { return T(-x); });
      case UnOp::Abs: return unary_map<T, T>(a, dt, dt, [](T x) { return x < T(0) ? T(-x) : x; });
      default: break;
    }
    if constexpr (std::is_floating_point_v<T>) {
      switch (op) {
        case UnOp::Exp: return unary_map<T, T>(a, dt, dt, [](T x) { return std::exp(x); });
        case UnOp::Log: return unary_map<T, T>(a, dt, dt, [](T x) { return std::log(x); });
        case UnOp::Tanh: return unary_map<T, T>(a, dt, dt, [](T x) { return std::tanh(x); });
        case UnOp::Sqrt: return unary_map<T, T>(a, dt, dt, [](T x) { return std::sqrt(x); });
        case UnOp::Rsqrt: return unary_map<T, T>(a, dt, dt, [](T x) { return T(1) / std::sqrt(x); });
        default: break;
      }
    }
    throw TypeError(str(name, ": unsupported dtype ", dtype_name(dt)));
  });
}

struct UnaryBackward : Node {
  UnOp op = UnOp::Neg;
  Tensor a, out;
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
    auto c = [&](double v) { return full({}, v, g.dtype()); };
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
