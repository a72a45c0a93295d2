// CUDA kernels of the elementwise family: binary, unary, compare, where, in-place add/scale.
// Each is the strided launcher (launch.cuh) around the scalar function the CPU loops call
// (kernels/elementwise_math.h), so the math is the CPU's, element for element.
#include <type_traits>
#include "backends/cuda/launch.cuh"
#include "kernels/elementwise.h"
#include "kernels/elementwise_math.h"

namespace cgad::cuda {

namespace {

// The op as a functor type (a template argument of the kernel): bf16 computes in float32 and
// rounds once, as on the CPU.
template <BinOp op>
struct BinaryOp {
  template <typename T>
  __device__ T operator()(T x, T y) const {
    if constexpr (std::is_same_v<T, bf16>) return math::binary_bf16<op>(x, y);
    else return math::binary<op>(x, y);
  }
};

template <UnOp op>
struct UnaryOp {
  template <typename T>
  __device__ T operator()(T x) const {
    if constexpr (std::is_same_v<T, bf16>) return math::unary_bf16<op>(x);
    else return math::unary<op>(x);
  }
};

template <CompareOp op>
struct CompareOpF {
  template <typename T>
  __device__ bool operator()(T x, T y) const { return math::compare<op>(x, y); }
};

// out[o0] = f(a[o1], b[o2])
template <typename T, typename O, typename Op>
struct BinaryMap {
  O* out;
  const T* a;
  const T* b;
  __device__ void operator()(const Offsets<3>& o) const { out[o[0]] = Op{}(a[o[1]], b[o[2]]); }
};

template <typename T, typename Op>
struct UnaryMap {
  T* out;
  const T* a;
  __device__ void operator()(const Offsets<2>& o) const { out[o[0]] = Op{}(a[o[1]]); }
};

template <typename T>
struct WhereMap {
  T* out;
  const bool* cond;
  const T* a;
  __device__ void operator()(const Offsets<3>& o) const {
    if (cond[o[1]]) out[o[0]] = a[o[2]];
  }
};

template <typename T>
struct AddInplaceMap {
  T* a;
  const T* b;
  __device__ void operator()(const Offsets<2>& o) const { a[o[0]] = BinaryOp<BinOp::Add>{}(a[o[0]], b[o[1]]); }
};

template <typename T>
struct ScaleMap {
  T* a;
  math::scale_t<T> s;
  __device__ void operator()(const Offsets<1>& o) const { a[o[0]] = math::scale(a[o[0]], s); }
};

// out = op(a, b) with a and b broadcast to out's shape; a and b read as T, out written as O.
template <typename T, typename O, typename Op>
void binary_launch(const Tensor& out, const Tensor& a, const Tensor& b) {
  const auto calc = broadcast_calc<3>(out.shape(), {&out, &a, &b});
  launch_strided(out.device(), out.numel(), calc, BinaryMap<T, O, Op>{out.data<O>(), a.data<T>(), b.data<T>()});
}

// Calls f(std::integral_constant<E, v>{}) for the runtime value `op` among `values`.
template <typename E, E... values, typename F>
void with_op(E op, F&& f) {
  [[maybe_unused]] const bool found = ((op == values ? (f(std::integral_constant<E, values>{}), true) : false) || ...);
}

template <typename F>
void with_binop(BinOp op, F&& f) {
  with_op<BinOp, BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div, BinOp::Pow>(op, f);
}

void binary(const Tensor& out, const Tensor& a, const Tensor& b, BinOp op) {
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_binop(op, [&](auto opc) { binary_launch<T, T, BinaryOp<decltype(opc)::value>>(out, a, b); });
  };
  if (out.dtype() == DType::BFloat16) return run(TypeTag<bf16>{});
  dispatch_numeric(out.dtype(), op_name(op), run);
}

void unary(const Tensor& out, const Tensor& a, UnOp op) {
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto calc = make_offset_calc<2>(a.shape(), {out.strides(), a.strides()});
    auto go = [&](auto opc) {
      launch_strided(out.device(), a.numel(), calc, UnaryMap<T, UnaryOp<decltype(opc)::value>>{out.data<T>(), a.data<T>()});
    };
    if constexpr (std::is_integral_v<T>) {
      // neg and abs are the integer ops the op allows (as the CPU kernel)
      if (op == UnOp::Neg) go(std::integral_constant<UnOp, UnOp::Neg>{});
      else go(std::integral_constant<UnOp, UnOp::Abs>{});
    } else {
      with_op<UnOp, UnOp::Neg, UnOp::Abs, UnOp::Exp, UnOp::Log, UnOp::Tanh, UnOp::Sqrt, UnOp::Rsqrt>(op, go);
    }
  };
  switch (out.dtype()) {
    case DType::Float32: return run(TypeTag<float>{});
    case DType::Float64: return run(TypeTag<double>{});
    case DType::Int32: return run(TypeTag<int32_t>{});
    case DType::Int64: return run(TypeTag<int64_t>{});
    case DType::BFloat16: return run(TypeTag<bf16>{});
    default: throw TypeError(str(op_name(op), ": unsupported dtype ", dtype_name(out.dtype())));
  }
}

void compare(const Tensor& out, const Tensor& a, const Tensor& b, CompareOp op) {
  dispatch_numeric(a.dtype(), op_name(op), [&](auto tag) {
    using T = typename decltype(tag)::type;
    with_op<CompareOp, CompareOp::EQ, CompareOp::NE, CompareOp::LT, CompareOp::LE, CompareOp::GT, CompareOp::GE>(
        op, [&](auto opc) { binary_launch<T, bool, CompareOpF<decltype(opc)::value>>(out, a, b); });
  });
}

void where(const Tensor& out, const Tensor& cond, const Tensor& a) {
  dispatch_all(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto calc = broadcast_calc<3>(out.shape(), {&out, &cond, &a});
    launch_strided(out.device(), out.numel(), calc, WhereMap<T>{out.data<T>(), cond.data<bool>(), a.data<T>()});
  });
}

void add_inplace(const Tensor& a, const Tensor& b) {
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto calc = broadcast_calc<2>(a.shape(), {&a, &b});
    launch_strided(a.device(), a.numel(), calc, AddInplaceMap<T>{a.data<T>(), b.data<T>()});
  };
  if (a.dtype() == DType::BFloat16) return run(TypeTag<bf16>{});
  dispatch_numeric(a.dtype(), "add_", run);
}

// a *= s over any strides (floating a): mul_.
void scale_inplace(const Tensor& a, double s) {
  dispatch_float<true>(a.dtype(), "mul_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto calc = make_offset_calc<1>(a.shape(), {a.strides()});
    launch_strided(a.device(), a.numel(), calc, ScaleMap<T>{a.data<T>(), static_cast<math::scale_t<T>>(s)});
  });
}

}  // namespace

CGAD_REGISTER_KERNEL(binary_kernel, CUDA, binary);
CGAD_REGISTER_KERNEL(unary_kernel, CUDA, unary);
CGAD_REGISTER_KERNEL(compare_kernel, CUDA, compare);
CGAD_REGISTER_KERNEL(where_kernel, CUDA, where);
CGAD_REGISTER_KERNEL(add_inplace_kernel, CUDA, add_inplace);
CGAD_REGISTER_KERNEL(mul_scalar_inplace_kernel, CUDA, scale_inplace);

}  // namespace cgad::cuda
