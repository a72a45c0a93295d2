// Which variant of an op family a kernel computes: shared by the ops, their kernels and the
// bindings.
#pragma once
#include <cstdint>

namespace cgad {

enum class BinOp : uint8_t { Add, Sub, Mul, Div, Pow };
enum class UnOp : uint8_t { Neg, Abs, Exp, Log, Tanh, Sqrt, Rsqrt };
enum class CompareOp : uint8_t { EQ, NE, LT, LE, GT, GE };

}  // namespace cgad

namespace cgad {

inline const char* op_name(BinOp op) {
  switch (op) {
    case BinOp::Add: return "add";
    case BinOp::Sub: return "sub";
    case BinOp::Mul: return "mul";
    case BinOp::Div: return "div";
    case BinOp::Pow: return "pow";
  }
  return "?";
}

inline const char* op_name(UnOp op) {
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

inline const char* op_name(CompareOp op) {
  switch (op) {
    case CompareOp::EQ: return "eq";
    case CompareOp::NE: return "ne";
    case CompareOp::LT: return "lt";
    case CompareOp::LE: return "le";
    case CompareOp::GT: return "gt";
    case CompareOp::GE: return "ge";
  }
  return "?";
}

}  // namespace cgad
