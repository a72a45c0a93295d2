// Broadcasting map loops over any strides, the CPU side of the elementwise kernels: the scalar
// function comes as a generic lambda so that the inner loop inlines and vectorizes.
#pragma once
#include "backends/cpu/loops.h"
#include "core/shape.h"

namespace cgad::cpu {

// out[i] = f(a[i], b[i]): a and b read as T, broadcast to out's shape, out written as O.
template <typename T, typename O, typename F>
void binary_map(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  const Shape& shape = out.shape();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  O* po = out.data<O>();
  StridedIter<3> it{shape, {out.strides(), broadcast_strides(a, shape), broadcast_strides(b, shape)}};
  it.run([&](const std::array<int64_t, 3>& o, int64_t n, const std::array<int64_t, 3>& s) {
    O* q = po + o[0];
    const T* x = pa + o[1];
    const T* y = pb + o[2];
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
      for (int64_t k = 0; k < n; ++k) q[k] = f(x[k], y[k]);
    } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {
      const T yv = *y;
      for (int64_t k = 0; k < n; ++k) q[k] = f(x[k], yv);
    } else {
      for (int64_t k = 0; k < n; ++k) q[k * s[0]] = f(x[k * s[1]], y[k * s[2]]);
    }
  });
}

// out[i] = f(a[i]), a read as T (same shape), out written as O.
template <typename T, typename O, typename F>
void unary_map(const Tensor& out, const Tensor& a, F f) {
  const T* pa = a.data<T>();
  O* po = out.data<O>();
  StridedIter<2> it{a.shape(), {out.strides(), a.strides()}};
  it.run([&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
    if (s[0] == 1 && s[1] == 1) {
      for (int64_t k = 0; k < n; ++k) po[o[0] + k] = f(pa[o[1] + k]);
    } else {
      for (int64_t k = 0; k < n; ++k) po[o[0] + k * s[0]] = f(pa[o[1] + k * s[1]]);
    }
  });
}

// a *= s in place over any strides (floating a): mul_ and gradient clipping.
void scale_inplace(const Tensor& a, double s);

}  // namespace cgad::cpu
