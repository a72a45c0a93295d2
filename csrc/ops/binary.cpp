// add, sub, mul, div, pow with broadcasting and type promotion, and their VJPs.
#include <cmath>
#include "autograd/node.h"
#include "ops/elementwise.h"

namespace cgad {

namespace {

enum class BinOp { Add, Sub, Mul, Div, Pow };

const char* bin_name(BinOp op) {
  switch (op) {
    case BinOp::Add: return "add";
    case BinOp::Sub: return "sub";
    case BinOp::Mul: return "mul";
    case BinOp::Div: return "div";
    case BinOp::Pow: return "pow";
  }
  return "?";
}

// Integer powers as torch computes them: by squaring, wrapping on overflow; a negative exponent
// gives 1 for 1, +-1 for -1 and 0 otherwise (casting std::pow's double back is UB out of range).
template <typename T>
T ipow(T base, T exp) {
  if (exp < 0) return base == 1 ? T(1) : base == -1 ? T(exp % 2 ? -1 : 1) : T(0);
  using U = std::make_unsigned_t<T>;
  U r = 1, b = U(base);
  for (U e = U(exp); e; e >>= 1) {
    if (e & 1) r *= b;
    b *= b;
  }
  return T(r);
}

template <typename T>
T apply(BinOp op, T x, T y) {
  if constexpr (std::is_same_v<T, bool>) {
    switch (op) {
      case BinOp::Add: return x || y;
      case BinOp::Mul: return x && y;
      default: return x;  // sub/div/pow on bool are rejected before the kernel
    }
  } else {
    switch (op) {
      case BinOp::Add: return x + y;
      case BinOp::Sub: return x - y;
      case BinOp::Mul: return x * y;
      case BinOp::Div: return x / y;
      case BinOp::Pow:
        if constexpr (std::is_integral_v<T>) return ipow(x, y);
        else return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
    }
  }
  return x;
}

Tensor binary_forward(const Tensor& a, const Tensor& b, BinOp op) {
  const char* name = bin_name(op);
  DType dt = result_type(a, b);
  if (op == BinOp::Div && !is_floating(dt)) dt = DType::Float32;  // `/` is true division
  if (dt == DType::Bool && (op == BinOp::Sub || op == BinOp::Div || op == BinOp::Pow))
    throw TypeError(str(name, ": not supported for bool tensors"));
  return dispatch_numeric(dt, name, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Per-op lambdas let the compiler inline and vectorize the inner loop.
    switch (op) {
      case BinOp::Add: return binary_map<T, T>(a, b, dt, dt, name, [](T x, T y) { return apply(BinOp::Add, x, y); });
      case BinOp::Sub: return binary_map<T, T>(a, b, dt, dt, name, [](T x, T y) { return apply(BinOp::Sub, x, y); });
      case BinOp::Mul: return binary_map<T, T>(a, b, dt, dt, name, [](T x, T y) { return apply(BinOp::Mul, x, y); });
      case BinOp::Div: return binary_map<T, T>(a, b, dt, dt, name, [](T x, T y) { return apply(BinOp::Div, x, y); });
      case BinOp::Pow: break;
    }
    return binary_map<T, T>(a, b, dt, dt, name, [](T x, T y) { return apply(BinOp::Pow, x, y); });
  });
}

struct BinaryBackward : Node {
  BinOp op = BinOp::Add;
  Tensor a, b, out;  // saved only where the VJP needs them
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
        if (na) ga = mul(g, mul(b, cgad::pow(a, sub(b, full({}, 1.0, b.dtype())))));
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
  Shape shape = cpu::broadcast_shapes(a.shape(), b.shape(), "add_");
  if (shape != a.shape())
    throw ValueError(str("add_: cannot add shape ", shape_str(b.shape()), " into shape ", shape_str(a.shape()), " in place"));
  Tensor bb = cast(b, a.dtype());
  dispatch_numeric(a.dtype(), "add_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pa = a.data<T>();
    const T* pb = bb.data<T>();
    cpu::StridedIter<2> it{shape, {a.strides(), cpu::broadcast_strides(bb, shape)}};
    it.run([&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
      if (s[0] == 1 && s[1] == 1) {
        for (int64_t k = 0; k < n; ++k) pa[o[0] + k] = apply(BinOp::Add, pa[o[0] + k], pb[o[1] + k]);
      } else {
        for (int64_t k = 0; k < n; ++k) pa[o[0] + k * s[0]] = apply(BinOp::Add, pa[o[0] + k * s[0]], pb[o[1] + k * s[1]]);
      }
    });
  });
}

void mul_scalar_(Tensor& a, double s) {
  dispatch_float(a.dtype(), "mul_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pa = a.data<T>();
    const T v = static_cast<T>(s);
    cpu::StridedIter<1> it{a.shape(), {a.strides()}};
    it.run([&](const std::array<int64_t, 1>& o, int64_t n, const std::array<int64_t, 1>& st) {
      for (int64_t k = 0; k < n; ++k) pa[o[0] + k * st[0]] *= v;
    });
  });
}

}  // namespace cgad
