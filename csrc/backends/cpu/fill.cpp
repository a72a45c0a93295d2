#include "backends/cpu/fill.h"
#include "backends/cpu/loops.h"

namespace cgad::cpu {

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape st(shape.size(), 0);
  int64_t off = int64_t(shape.size()) - t.dim();
  for (int64_t i = 0; i < t.dim(); ++i)
    st[off + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (x != y && x != 1 && y != 1)
      throw ValueError(str(op, ": shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast together"));
    out[i] = x == 1 ? y : x;
  }
  return out;
}

void fill(const Tensor& t, double value) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T v = convert<T>(value);
    T* p = t.data<T>();
    StridedIter<1> it{t.shape(), {t.strides()}};
    it.run([&](const std::array<int64_t, 1>& o, int64_t n, const std::array<int64_t, 1>& s) {
      for (int64_t k = 0; k < n; ++k) p[o[0] + k * s[0]] = v;
    });
  });
}

void copy(const Tensor& dst, const Tensor& src) {
  dispatch_all(dst.dtype(), [&](auto dtag) {
    using D = typename decltype(dtag)::type;
    dispatch_all(src.dtype(), [&](auto stag) {
      using S = typename decltype(stag)::type;
      D* d = dst.data<D>();
      const S* s = src.data<S>();
      StridedIter<2> it{dst.shape(), {dst.strides(), broadcast_strides(src, dst.shape())}};
      it.run([&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& st) {
        if (st[0] == 1 && st[1] == 1) {
          for (int64_t k = 0; k < n; ++k) d[o[0] + k] = convert<D>(s[o[1] + k]);
        } else {
          for (int64_t k = 0; k < n; ++k) d[o[0] + k * st[0]] = convert<D>(s[o[1] + k * st[1]]);
        }
      });
    });
  });
}

}  // namespace cgad::cpu
