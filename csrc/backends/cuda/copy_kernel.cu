// CUDA kernels of fill and the device-to-device copy: strided, broadcasting and dtype-converting,
// with the CPU's conversions (core/dtype.h's convert, CGAD_HD) and the CPU's rule for floats
// going to integers: NaN, inf and out-of-range values are a ValueError raised before anything is
// written, which here costs one stream synchronization (only for float -> integer copies).
#include <cmath>
#include <limits>
#include <type_traits>
#include "backends/cuda/launch.cuh"
#include "kernels/elementwise.h"

namespace cgad::cuda {

namespace {

template <typename T>
struct FillMap {
  T* p;
  T v;
  __device__ void operator()(const Offsets<1>& o) const { p[o[0]] = v; }
};

template <typename D, typename S>
struct ConvertMap {
  D* d;
  const S* s;
  __device__ void operator()(const Offsets<2>& o) const { d[o[0]] = convert<D>(s[o[1]]); }
};

// Records the offset of src's lowest-addressed element that has no value in an integer type of
// range [lo, hi) (deterministic, unlike which thread of the CPU's check finds one first).
template <typename S>
struct IntegerRangeCheck {
  const S* s;
  double lo, hi;
  unsigned long long* failure;
  __device__ void operator()(const Offsets<1>& o) const {
    const double x = convert<double>(s[o[0]]);
    if (!(std::trunc(x) >= lo && x < hi)) record_failure(failure, uint64_t(o[0]));
  }
};

void fill(const Tensor& t, double value) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto calc = make_offset_calc<1>(t.shape(), {t.strides()});
    launch_strided(t.device(), t.numel(), calc, FillMap<T>{t.data<T>(), convert<T>(value)});
  });
}

// ValueError naming the first src value that cannot become an integer D, before any write.
template <typename D, typename S>
void check_integer_range(const Tensor& dst, const Tensor& src) {
  const double lo = double(std::numeric_limits<D>::min()), hi = -lo;
  FirstFailure failure(src.device());
  const auto calc = make_offset_calc<1>(src.shape(), {src.strides()});
  launch_strided(src.device(), src.numel(), calc, IntegerRangeCheck<S>{src.data<S>(), lo, hi, failure.device_word()});
  const unsigned long long bad = failure.first();  // the element offset of a failing value
  if (bad == FirstFailure::kNone) return;
  const double x = convert<double>(read_element(src.device(), src.data<S>() + int64_t(bad)));
  throw ValueError(str("cannot convert the ", dtype_name(src.dtype()), " value ", x, " to ", dtype_name(dst.dtype()),
                       ": NaN, inf and values out of its range have no integer value"));
}

void copy(const Tensor& dst, const Tensor& src) {
  dispatch_all(dst.dtype(), [&](auto dtag) {
    using D = typename decltype(dtag)::type;
    dispatch_all(src.dtype(), [&](auto stag) {
      using S = typename decltype(stag)::type;
      if constexpr (std::is_integral_v<D> && !std::is_same_v<D, bool> && !std::is_integral_v<S>) check_integer_range<D, S>(dst, src);
      if constexpr (std::is_same_v<D, S>) {
        // The common case (contiguous(), cat of contiguous parts): one DMA copy.
        if (dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape()) {
          if (dst.numel() == 0) return;
          DeviceGuard guard(dst.device());
          CGAD_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), size_t(dst.numel()) * sizeof(D),
                                          cudaMemcpyDeviceToDevice, stream(dst.device().index)));
          return;
        }
      }
      const auto calc = broadcast_calc<2>(dst.shape(), {&dst, &src});
      launch_strided(dst.device(), dst.numel(), calc, ConvertMap<D, S>{dst.data<D>(), src.data<S>()});
    });
  });
}

}  // namespace

CGAD_REGISTER_KERNEL(fill_kernel, CUDA, fill);
CGAD_REGISTER_KERNEL(copy_kernel, CUDA, copy);

}  // namespace cgad::cuda
