// Shared argument checks of the fused nn ops.
#pragma once
#include "autograd/node.h"
#include "ops/ops.h"

namespace cgad {

inline void check_floating(const Tensor& t, const char* op, const char* what, bool allow_bf16 = false) {
  if (!t.defined()) throw ValueError(str(op, ": ", what, " is missing"));
  check_float_dtype(t.dtype(), op, what, allow_bf16);
}

inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.dtype() != b.dtype())
    throw TypeError(str(op, ": expected tensors of one dtype, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype())));
}

}  // namespace cgad
