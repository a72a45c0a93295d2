// Element types and their promotion rules (torch.result_type), plus dispatch from a runtime
// dtype to a compile-time C++ type.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include "core/error.h"
#include "core/hd.h"

namespace cgad {

enum class DType : uint8_t { Bool, Int32, Int64, BFloat16, Float32, Float64 };

// bfloat16 storage: the upper half of a float32, rounded to nearest even. Host and device share
// the conversions (CGAD_HD), so a CUDA kernel rounds exactly as the CPU does.
struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  // Branch-free (a select, not a jump), so that loops converting to bf16 vectorize.
  CGAD_HD explicit bf16(float f) {
    const uint32_t u = float_bits(f);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (u >> 16) | 0x0040u;  // NaN stays a (quiet) NaN
    bits = static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
  }
  CGAD_HD operator float() const { return bits_float(static_cast<uint32_t>(bits) << 16); }

 private:
  // memcpy is the host's defined type pun; device code has the intrinsics for it.
  CGAD_HD static uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
#endif
  }
  CGAD_HD static float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, 4);
    return f;
#endif
  }
};

inline size_t itemsize(DType d) {
  switch (d) {
    case DType::Bool: return 1;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::BFloat16: return 2;
    case DType::Float32: return 4;
    case DType::Float64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::Bool: return "bool";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::BFloat16: return "bfloat16";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
  }
  return "?";
}

inline bool is_floating(DType d) { return d == DType::Float32 || d == DType::Float64 || d == DType::BFloat16; }
inline bool is_integral(DType d) { return d == DType::Int32 || d == DType::Int64; }

// 0 bool, 1 integer, 2 floating: a Python scalar or 0-d tensor widens only across categories.
inline int category(DType d) { return d == DType::Bool ? 0 : (is_integral(d) ? 1 : 2); }

// torch.result_type for two tensors of the same dimensionality: a table, not the enum's order.
inline DType promote(DType a, DType b) {
  constexpr DType B = DType::Bool, I = DType::Int32, L = DType::Int64, H = DType::BFloat16, F = DType::Float32,
                  D = DType::Float64;
  // rows and columns in enum order: bool, int32, int64, bfloat16, float32, float64
  constexpr DType table[6][6] = {
      {B, I, L, H, F, D},  // bool
      {I, I, L, H, F, D},  // int32
      {L, L, L, H, F, D},  // int64
      {H, H, H, H, F, D},  // bfloat16: an integer beside it stays bfloat16
      {F, F, F, F, F, D},  // float32
      {D, D, D, D, D, D},  // float64
  };
  return table[static_cast<uint8_t>(a)][static_cast<uint8_t>(b)];
}

// Where statistics and optimizer state are kept for data of dtype d: float64 for float64,
// float32 otherwise (bfloat16 data accumulates and keeps its statistics in float32).
inline DType stats_dtype(DType d) { return d == DType::Float64 ? DType::Float64 : DType::Float32; }

// TypeError naming the op unless d is float32 or float64 (or bfloat16, where the op allows it).
inline void check_float_dtype(DType d, const char* op, const char* what, bool allow_bf16 = false) {
  if (d == DType::Float32 || d == DType::Float64 || (allow_bf16 && d == DType::BFloat16)) return;
  throw TypeError(str(op, ": expected ", what, " to be float32", allow_bf16 ? ", float64 or bfloat16" : " or float64",
                      ", got ", dtype_name(d)));
}

template <typename T> struct TypeTag { using type = T; };

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<bf16>() { return DType::BFloat16; }
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }

// Calls f(TypeTag<T>{}) for the C++ type of d, within a kernel: the one dispatch over the
// floating types. bfloat16 is admitted where the kernel has a bf16 path (kWithBF16); otherwise
// it is a TypeError naming the op (`what`) and the dtype.
template <bool kWithBF16 = false, typename F>
decltype(auto) dispatch_float(DType d, const char* what, F&& f) {
  switch (d) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    case DType::BFloat16:
      if constexpr (kWithBF16) return f(TypeTag<bf16>{});
      [[fallthrough]];
    default: throw TypeError(str(what, ": expected a float32 or float64 tensor, got ", dtype_name(d)));
  }
}

// As dispatch_float, over the integer and bool types too.
template <bool kWithBF16 = false, typename F>
decltype(auto) dispatch_numeric(DType d, const char* what, F&& f) {
  switch (d) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    case DType::Int32: return f(TypeTag<int32_t>{});
    case DType::Int64: return f(TypeTag<int64_t>{});
    case DType::Bool: return f(TypeTag<bool>{});
    case DType::BFloat16:
      if constexpr (kWithBF16) return f(TypeTag<bf16>{});
      [[fallthrough]];
    default: throw TypeError(str(what, ": ", dtype_name(d), " tensors are not supported by this op yet; convert with .float()"));
  }
}

template <typename F>
decltype(auto) dispatch_all(DType d, F&& f) {
  switch (d) {
    case DType::Float32: return f(TypeTag<float>{});
    case DType::Float64: return f(TypeTag<double>{});
    case DType::Int32: return f(TypeTag<int32_t>{});
    case DType::Int64: return f(TypeTag<int64_t>{});
    case DType::Bool: return f(TypeTag<bool>{});
    case DType::BFloat16: return f(TypeTag<bf16>{});
  }
  throw TypeError("unknown dtype");
}

// Converts between element types as torch's .to(dtype) does (bool is x != 0).
template <typename To, typename From>
CGAD_HD inline To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    if constexpr (std::is_same_v<From, bf16>) return static_cast<float>(v) != 0.0f;
    else return v != From(0);
  } else if constexpr (std::is_same_v<To, bf16>) {
    return bf16(static_cast<float>(v));
  } else if constexpr (std::is_same_v<From, bf16>) {
    return static_cast<To>(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

}  // namespace cgad
