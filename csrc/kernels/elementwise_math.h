// The scalar math of the elementwise ops, written once for every backend: the CPU loops call
// these, and the CUDA launchers (backends/cuda) call the same functions on the device (CGAD_HD).
#pragma once
#include <cmath>
#include <type_traits>
#include "core/dtype.h"
#include "core/hd.h"
#include "kernels/op_kinds.h"

namespace cgad::math {

// Integer powers as torch computes them: by squaring, wrapping on overflow; a negative exponent
// gives 1 for 1, +-1 for -1 and 0 otherwise (casting std::pow's double back is UB out of range).
template <typename T>
CGAD_HD T ipow(T base, T exp) {
  if (exp < 0) return base == 1 ? T(1) : base == -1 ? T(exp % 2 ? -1 : 1) : T(0);
  using U = std::make_unsigned_t<T>;
  U r = 1, b = U(base);
  for (U e = U(exp); e; e >>= 1) {
    if (e & 1) r *= b;
    b *= b;
  }
  return T(r);
}

template <BinOp op, typename T>
CGAD_HD T binary(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) {
    if constexpr (op == BinOp::Add) return x || y;
    else if constexpr (op == BinOp::Mul) return x && y;
    else return x;  // sub/div/pow on bool are rejected by the op
  } else if constexpr (std::is_integral_v<T>) {
    // Integers wrap around on overflow, as torch's do; in signed arithmetic that would be
    // undefined behaviour, in unsigned it is defined.
    using U = std::make_unsigned_t<T>;
    if constexpr (op == BinOp::Add) return T(U(x) + U(y));
    else if constexpr (op == BinOp::Sub) return T(U(x) - U(y));
    else if constexpr (op == BinOp::Mul) return T(U(x) * U(y));
    else if constexpr (op == BinOp::Div) return x / y;  // not reached: `/` on integers computes in float
    else return ipow(x, y);
  } else {
    if constexpr (op == BinOp::Add) return x + y;
    else if constexpr (op == BinOp::Sub) return x - y;
    else if constexpr (op == BinOp::Mul) return x * y;
    else if constexpr (op == BinOp::Div) return x / y;
    else return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
  }
}

// neg and abs keep integer dtypes; the others are floating only (the op computes integers in float32).
template <UnOp op, typename T>
CGAD_HD T unary(T x) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;  // -INT_MIN wraps to INT_MIN, as in torch
    if constexpr (op == UnOp::Neg) return T(U(0) - U(x));
    else return x < T(0) ? T(U(0) - U(x)) : x;
  } else {
    if constexpr (op == UnOp::Neg) return T(-x);
    else if constexpr (op == UnOp::Abs) return x < T(0) ? T(-x) : x;
    else if constexpr (op == UnOp::Exp) return std::exp(x);
    else if constexpr (op == UnOp::Log) return std::log(x);
    else if constexpr (op == UnOp::Tanh) return std::tanh(x);
    else if constexpr (op == UnOp::Sqrt) return std::sqrt(x);
    else return T(1) / std::sqrt(x);
  }
}

template <CompareOp op, typename T>
CGAD_HD bool compare(T x, T y) {
  if constexpr (op == CompareOp::EQ) return x == y;
  else if constexpr (op == CompareOp::NE) return x != y;
  else if constexpr (op == CompareOp::LT) return x < y;
  else if constexpr (op == CompareOp::LE) return x <= y;
  else if constexpr (op == CompareOp::GT) return x > y;
  else return x >= y;
}

// The order of max, argmax and topk: NaN counts as the largest (so max propagates it, as torch's
// does), equal values are equal (ties go to the lower index, the callers' rule).
template <typename T>
CGAD_HD bool greater(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

// bfloat16 computes each element in float32 and rounds once on the store (as torch).
template <BinOp op>
CGAD_HD bf16 binary_bf16(bf16 x, bf16 y) { return bf16(binary<op>(float(x), float(y))); }
template <UnOp op>
CGAD_HD bf16 unary_bf16(bf16 x) { return bf16(unary<op>(float(x))); }

// The type a scale factor is applied in: float32 for bfloat16, the type itself otherwise.
template <typename T>
using scale_t = std::conditional_t<std::is_same_v<T, bf16>, float, T>;

// x * s rounded to T (mul_, gradient clipping).
template <typename T>
CGAD_HD T scale(T x, scale_t<T> s) { return T(scale_t<T>(x) * s); }

}  // namespace cgad::math
