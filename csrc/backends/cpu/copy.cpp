// CPU kernels of fill and the strided, broadcasting, dtype-converting copy (contiguous(),
// .to(dtype), cat, copy_), and the CPU's memory: its caching allocator.
#include "backends/cpu/loops.h"
#include "backends/cpu/register.h"
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include "core/allocator.h"
#include "core/shape.h"
#include "kernels/elementwise.h"

namespace cgad::cpu {

namespace {

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
      if constexpr (std::is_integral_v<D> && !std::is_same_v<D, bool> && !std::is_integral_v<S>) {
        // NaN, inf and floats outside D's range have no integer value (the cast would be undefined
        // and give a wrong number): all are checked before anything is written, so a failed
        // copy_ leaves dst as it was.
        const double lo = double(std::numeric_limits<D>::min()), hi = -lo;
        std::atomic<bool> bad{false};  // an exception cannot leave the OpenMP region: flagged instead
        double bad_value = 0;
        StridedIter<1> check{src.shape(), {src.strides()}};
        check.run([&](const std::array<int64_t, 1>& o, int64_t n, const std::array<int64_t, 1>& st) {
          for (int64_t k = 0; k < n; ++k) {
            const double x = convert<double>(s[o[0] + k * st[0]]);
            if (!(std::trunc(x) >= lo && x < hi)) {
              if (!bad.exchange(true)) bad_value = x;
              return;
            }
          }
        });
        if (bad)
          throw ValueError(str("cannot convert the ", dtype_name(src.dtype()), " value ", bad_value, " to ", dtype_name(dst.dtype()),
                               ": NaN, inf and values out of its range have no integer value"));
      }
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

CachingHostAllocator& cpu_allocator() {
  // Leaked on purpose: tensors owned by Python objects may be freed after static destructors ran.
  static CachingHostAllocator* a = std::make_unique<CachingHostAllocator>().release();
  return *a;
}

[[maybe_unused]] const bool cpu_allocator_registered = (register_allocator(DeviceType::CPU, &cpu_allocator()), true);

}  // namespace

CGAD_REGISTER_CPU_KERNEL(fill_kernel, fill);
CGAD_REGISTER_CPU_KERNEL(copy_kernel, copy);

}  // namespace cgad::cpu
