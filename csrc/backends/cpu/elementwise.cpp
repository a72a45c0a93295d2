// CPU kernels of the elementwise family: binary, unary, compare, where, in-place add/scale.
#include "backends/cpu/maps.h"
#include "backends/cpu/register.h"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace cgad::cpu {

namespace {

void binary(const Tensor& out, const Tensor& a, const Tensor& b, BinOp op) {
  if (out.dtype() == DType::BFloat16) {
    switch (op) {
      case BinOp::Add: return binary_map<bf16, bf16>(out, a, b, [](bf16 x, bf16 y) { return math::binary_bf16<BinOp::Add>(x, y); });
      case BinOp::Sub: return binary_map<bf16, bf16>(out, a, b, [](bf16 x, bf16 y) { return math::binary_bf16<BinOp::Sub>(x, y); });
      case BinOp::Mul: return binary_map<bf16, bf16>(out, a, b, [](bf16 x, bf16 y) { return math::binary_bf16<BinOp::Mul>(x, y); });
      case BinOp::Div: return binary_map<bf16, bf16>(out, a, b, [](bf16 x, bf16 y) { return math::binary_bf16<BinOp::Div>(x, y); });
      case BinOp::Pow: return binary_map<bf16, bf16>(out, a, b, [](bf16 x, bf16 y) { return math::binary_bf16<BinOp::Pow>(x, y); });
    }
  }
  dispatch_numeric(out.dtype(), op_name(op), [&](auto tag) {
    using T = typename decltype(tag)::type;
    // One instantiation per op, so that the inner loop inlines and vectorizes.
    switch (op) {
      case BinOp::Add: return binary_map<T, T>(out, a, b, [](T x, T y) { return math::binary<BinOp::Add>(x, y); });
      case BinOp::Sub: return binary_map<T, T>(out, a, b, [](T x, T y) { return math::binary<BinOp::Sub>(x, y); });
      case BinOp::Mul: return binary_map<T, T>(out, a, b, [](T x, T y) { return math::binary<BinOp::Mul>(x, y); });
      case BinOp::Div: return binary_map<T, T>(out, a, b, [](T x, T y) { return math::binary<BinOp::Div>(x, y); });
      case BinOp::Pow: return binary_map<T, T>(out, a, b, [](T x, T y) { return math::binary<BinOp::Pow>(x, y); });
    }
  });
}

template <typename T>
void unary_typed(const Tensor& out, const Tensor& a, UnOp op) {
  if constexpr (std::is_same_v<T, bf16>) {
    switch (op) {
      case UnOp::Neg: return unary_map<T, T>(out, a, [](bf16 x) { return math::unary_bf16<UnOp::Neg>(x); });
      case UnOp::Abs: return unary_map<T, T>(out, a, [](bf16 x) { return math::unary_bf16<UnOp::Abs>(x); });
      case UnOp::Exp: return unary_map<T, T>(out, a, [](bf16 x) { return math::unary_bf16<UnOp::Exp>(x); });
      case UnOp::Log: return unary_map<T, T>(out, a, [](bf16 x) { return math::unary_bf16<UnOp::Log>(x); });
      case UnOp::Tanh: return unary_map<T, T>(out, a, [](bf16 x) { return math::unary_bf16<UnOp::Tanh>(x); });
      case UnOp::Sqrt: return unary_map<T, T>(out, a, [](bf16 x) { return math::unary_bf16<UnOp::Sqrt>(x); });
      case UnOp::Rsqrt: return unary_map<T, T>(out, a, [](bf16 x) { return math::unary_bf16<UnOp::Rsqrt>(x); });
    }
  } else if constexpr (std::is_integral_v<T>) {
    if (op == UnOp::Neg) return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Neg>(x); });
    return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Abs>(x); });  // the op allows no others
  } else {
    switch (op) {
      case UnOp::Neg: return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Neg>(x); });
      case UnOp::Abs: return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Abs>(x); });
      case UnOp::Exp: return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Exp>(x); });
      case UnOp::Log: return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Log>(x); });
      case UnOp::Tanh: return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Tanh>(x); });
      case UnOp::Sqrt: return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Sqrt>(x); });
      case UnOp::Rsqrt: return unary_map<T, T>(out, a, [](T x) { return math::unary<UnOp::Rsqrt>(x); });
    }
  }
}

void unary(const Tensor& out, const Tensor& a, UnOp op) {
  switch (out.dtype()) {
    case DType::Float32: return unary_typed<float>(out, a, op);
    case DType::Float64: return unary_typed<double>(out, a, op);
    case DType::Int32: return unary_typed<int32_t>(out, a, op);
    case DType::Int64: return unary_typed<int64_t>(out, a, op);
    case DType::BFloat16: return unary_typed<bf16>(out, a, op);
    default: throw TypeError(str(op_name(op), ": unsupported dtype ", dtype_name(out.dtype())));
  }
}

void compare(const Tensor& out, const Tensor& a, const Tensor& b, CompareOp op) {
  dispatch_numeric(a.dtype(), op_name(op), [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case CompareOp::EQ: return binary_map<T, bool>(out, a, b, [](T x, T y) { return math::compare<CompareOp::EQ>(x, y); });
      case CompareOp::NE: return binary_map<T, bool>(out, a, b, [](T x, T y) { return math::compare<CompareOp::NE>(x, y); });
      case CompareOp::LT: return binary_map<T, bool>(out, a, b, [](T x, T y) { return math::compare<CompareOp::LT>(x, y); });
      case CompareOp::LE: return binary_map<T, bool>(out, a, b, [](T x, T y) { return math::compare<CompareOp::LE>(x, y); });
      case CompareOp::GT: return binary_map<T, bool>(out, a, b, [](T x, T y) { return math::compare<CompareOp::GT>(x, y); });
      case CompareOp::GE: return binary_map<T, bool>(out, a, b, [](T x, T y) { return math::compare<CompareOp::GE>(x, y); });
    }
  });
}

void where(const Tensor& out, const Tensor& cond, const Tensor& a) {
  dispatch_all(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Shape& shape = out.shape();
    T* po = out.data<T>();
    const T* pa = a.data<T>();
    const bool* pc = cond.data<bool>();
    StridedIter<3> it{shape, {out.strides(), broadcast_strides(cond, shape), broadcast_strides(a, shape)}};
    it.run([&](const std::array<int64_t, 3>& o, int64_t n, const std::array<int64_t, 3>& s) {
      for (int64_t k = 0; k < n; ++k)
        if (pc[o[1] + k * s[1]]) po[o[0] + k * s[0]] = pa[o[2] + k * s[2]];
    });
  });
}

void add_inplace(const Tensor& a, const Tensor& b) {
  if (a.dtype() == DType::BFloat16) {  // float32 arithmetic, one rounding per element
    bf16* pa = a.data<bf16>();
    const bf16* pb = b.data<bf16>();
    StridedIter<2> it{a.shape(), {a.strides(), broadcast_strides(b, a.shape())}};
    it.run([&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
      bf16* x = pa + o[0];
      const bf16* y = pb + o[1];
      if (s[0] == 1 && s[1] == 1) {  // no `omp simd` here: it keeps bf16 loops from vectorizing (simd_loop.h)
        for (int64_t k = 0; k < n; ++k) x[k] = math::binary_bf16<BinOp::Add>(x[k], y[k]);
      } else {
        for (int64_t k = 0; k < n; ++k) x[k * s[0]] = math::binary_bf16<BinOp::Add>(x[k * s[0]], y[k * s[1]]);
      }
    });
    return;
  }
  dispatch_numeric(a.dtype(), "add_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pa = a.data<T>();
    const T* pb = b.data<T>();
    if (a.is_contiguous() && b.is_contiguous() && b.shape() == a.shape()) {  // grad accumulation
      const int64_t n = a.numel();
#pragma omp parallel for simd schedule(static) num_threads(threads_for(n))
      for (int64_t k = 0; k < n; ++k) pa[k] = pa[k] + pb[k];
      return;
    }
    StridedIter<2> it{a.shape(), {a.strides(), broadcast_strides(b, a.shape())}};
    it.run([&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
      if (s[0] == 1 && s[1] == 1) {
        for (int64_t k = 0; k < n; ++k) pa[o[0] + k] = math::binary<BinOp::Add>(pa[o[0] + k], pb[o[1] + k]);
      } else {
        for (int64_t k = 0; k < n; ++k) pa[o[0] + k * s[0]] = math::binary<BinOp::Add>(pa[o[0] + k * s[0]], pb[o[1] + k * s[1]]);
      }
    });
  });
}

}  // namespace

void scale_inplace(const Tensor& a, double s) {
  dispatch_float<true>(a.dtype(), "mul_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* pa = a.data<T>();
    const math::scale_t<T> v = static_cast<math::scale_t<T>>(s);  // bf16 scales in float32
    StridedIter<1> it{a.shape(), {a.strides()}};
    it.run([&](const std::array<int64_t, 1>& o, int64_t n, const std::array<int64_t, 1>& st) {
      for (int64_t k = 0; k < n; ++k) pa[o[0] + k * st[0]] = math::scale(pa[o[0] + k * st[0]], v);
    });
  });
}

CGAD_REGISTER_CPU_KERNEL(binary_kernel, binary);
CGAD_REGISTER_CPU_KERNEL(unary_kernel, unary);
CGAD_REGISTER_CPU_KERNEL(compare_kernel, compare);
CGAD_REGISTER_CPU_KERNEL(where_kernel, where);
CGAD_REGISTER_CPU_KERNEL(add_inplace_kernel, add_inplace);
CGAD_REGISTER_CPU_KERNEL(mul_scalar_inplace_kernel, scale_inplace);

}  // namespace cgad::cpu
