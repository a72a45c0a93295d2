// Shared machinery of the elementwise ops: broadcasting binary and unary kernels over any
// strides, with the op's scalar function given as a generic lambda.
#pragma once
#include "backends/cpu/fill.h"
#include "backends/cpu/loops.h"
#include "ops/ops.h"

namespace cgad {

// out[i] = f(a[i], b[i]) computed in C++ type T (the promoted dtype), written as O.
template <typename T, typename O, typename F>
Tensor binary_map(const Tensor& a_in, const Tensor& b_in, DType compute, DType out_dtype, const char* op, F f) {
  check_same_device(a_in, b_in, op);
  Shape shape = cpu::broadcast_shapes(a_in.shape(), b_in.shape(), op);
  Tensor a = cast(a_in, compute), b = cast(b_in, compute);
  Tensor out = empty(shape, out_dtype, a.device());
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  O* po = out.data<O>();
  cpu::StridedIter<3> it{shape, {out.strides(), cpu::broadcast_strides(a, shape), cpu::broadcast_strides(b, shape)}};
  it.run([&](const std::array<int64_t, 3>& o, int64_t n, const std::array<int64_t, 3>& s) {
    O* q = po + o[0];
    const T* x = pa + o[1];
    const T* y = pb + o[2];
    if (s[1] == 1 && s[2] == 1) {
      for (int64_t k = 0; k < n; ++k) q[k] = f(x[k], y[k]);
    } else if (s[1] == 1 && s[2] == 0) {
      const T yv = *y;
      for (int64_t k = 0; k < n; ++k) q[k] = f(x[k], yv);
    } else {
      for (int64_t k = 0; k < n; ++k) q[k] = f(x[k * s[1]], y[k * s[2]]);
    }
  });
  return out;
}

// out[i] = f(a[i]) computed in T, written as O.
template <typename T, typename O, typename F>
Tensor unary_map(const Tensor& a_in, DType compute, DType out_dtype, F f) {
  Tensor a = cast(a_in, compute);
  Tensor out = empty(a.shape(), out_dtype, a.device());
  const T* pa = a.data<T>();
  O* po = out.data<O>();
  cpu::StridedIter<2> it{a.shape(), {out.strides(), a.strides()}};
  it.run([&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
    if (s[1] == 1) {
      for (int64_t k = 0; k < n; ++k) po[o[0] + k] = f(pa[o[1] + k]);
    } else {
      for (int64_t k = 0; k < n; ++k) po[o[0] + k] = f(pa[o[1] + k * s[1]]);
    }
  });
  return out;
}

// The grad of a broadcast input: summed back to its shape and cast to its dtype.
inline Tensor reduce_grad(const Tensor& g, const Shape& shape, DType dtype) {
  return cast(sum_to(g, shape), dtype);
}

}  // namespace cgad
