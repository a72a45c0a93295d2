// Fill, copies within and across devices, and dtype conversion; the data-level helpers (cast,
// contiguous_data) every op uses. Kernels: kernels/elementwise.h.
#include <cmath>
#include "autograd/node.h"
#include "core/allocator.h"
#include "core/shape.h"
#include "kernels/elementwise.h"
#include "ops/ops.h"

namespace cgad {

CGAD_DEFINE_KERNEL(fill_kernel, void(const Tensor&, double));
CGAD_DEFINE_KERNEL(copy_kernel, void(const Tensor&, const Tensor&));
CGAD_DEFINE_KERNEL(copy_from_cpu_kernel, void(const Tensor&, const Tensor&));
CGAD_DEFINE_KERNEL(copy_to_cpu_kernel, void(const Tensor&, const Tensor&));

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.device() != b.device())
    throw RuntimeError(str(op, ": expected all tensors on the same device, got ", a.device().str(), " and ", b.device().str()));
}

void check_scalar_fits(const char* op, double value, DType dtype) {
  bool fits = true;
  switch (dtype) {
    case DType::Int32: fits = std::trunc(value) >= -2147483648.0 && value < 2147483648.0; break;
    case DType::Int64: fits = std::trunc(value) >= -9223372036854775808.0 && value < 9223372036854775808.0; break;
    // inf and NaN are float values; a finite double beyond the type's largest finite value would
    // silently become inf (torch raises here too).
    case DType::Float32: fits = !std::isfinite(value) || std::fabs(value) <= 3.4028234663852886e38; break;
    case DType::BFloat16: fits = !std::isfinite(value) || std::fabs(value) <= 3.3895313892515355e38; break;
    case DType::Float64: case DType::Bool: break;
  }
  if (!fits) throw ValueError(str(op, ": value ", value, " cannot be converted to ", dtype_name(dtype), " without overflow"));
}

namespace {

// The copy kernel's conversion errors (NaN or an out-of-range float to an integer dtype) name
// the op the user called.
template <typename F>
auto naming_op(const char* op, F&& f) {
  try {
    return f();
  } catch (const ValueError& e) {
    throw ValueError(str(op, ": ", e.what()));
  }
}

}  // namespace

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  check_scalar_fits("full", value, dtype);
  Tensor t = empty(shape, dtype, device);
  fill_kernel()(device, t, value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }

void fill_(const Tensor& t, double value) {
  check_scalar_fits("fill_", value, t.dtype());  // as torch: never a wrapped integer or a silent inf
  fill_kernel()(t.device(), t, value);
  t.bump_version();
}

Tensor cast(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = empty(t.shape(), dtype, t.device());
  copy_kernel()(out.device(), out, t);
  return out;
}

Tensor contiguous_data(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  copy_kernel()(out.device(), out, t);
  return out;
}

namespace {

// A contiguous copy of t on `device` (t contiguous itself), through the CPU between two devices
// neither of which is the CPU.
Tensor move_data(const Tensor& t, Device device) {
  Tensor src = contiguous_data(t);
  Tensor out = empty(t.shape(), t.dtype(), device);
  if (src.device().is_cpu()) {
    copy_from_cpu_kernel()(device, out, src);
  } else if (device.is_cpu()) {
    copy_to_cpu_kernel()(src.device(), out, src);
  } else {
    return move_data(move_data(src, Device{}), device);
  }
  return out;
}

struct CastBackward : Node {
  DType in_dtype = DType::Float32;
  const char* name() const override { return "ToCopyBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {cast(g, in_dtype)}; }
};

struct ToDeviceBackward : Node {
  Device in_device;
  const char* name() const override { return "ToCopyBackward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {move_data(g, in_device)}; }
};

}  // namespace

Tensor to_device(const Tensor& t, Device device) {
  if (t.device() == device) return t;
  allocator_for(device);  // a device this build has no backend for is an error before any copy
  Tensor out = move_data(t, device);
  if (auto n = record<ToDeviceBackward>(out, {&t})) n->in_device = t.device();
  return out;
}

void move_to_device_(const Tensor& t, Device device) {
  if (!t.is_leaf()) throw RuntimeError("to(device) in place: only leaf tensors (parameters) can be moved in place");
  if (t.device() == device) return;
  Tensor moved = move_data(t.detach(), device);
  TensorImpl& impl = *t.impl();
  impl.storage = moved.impl()->storage;
  impl.offset = 0;
  impl.strides = moved.strides();
  if (impl.grad.defined()) impl.grad = move_data(impl.grad, device);
}

void copy_(const Tensor& dst, const Tensor& src) {
  Shape b = broadcast_shapes(dst.shape(), src.shape(), "copy_");
  if (b != dst.shape())
    throw ValueError(str("copy_: source of shape ", shape_str(src.shape()), " does not broadcast to ", shape_str(dst.shape())));
  for (int64_t i = 0; i < dst.dim(); ++i)  // as torch: writing one location from several elements
    if (dst.strides()[size_t(i)] == 0 && dst.shape()[size_t(i)] > 1)
      throw RuntimeError(str("copy_: the destination of shape ", shape_str(dst.shape()),
                             " is an expanded view whose elements share memory; copy into a contiguous tensor"));
  Tensor s = src.detach();
  if (s.device() != dst.device()) s = move_data(s, dst.device());
  else if (s.impl()->storage == dst.impl()->storage) s = clone(s);  // may overlap: read it all first
  naming_op("copy_", [&] { copy_kernel()(dst.device(), dst, s); });
  dst.bump_version();
}

Tensor to_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = naming_op("to", [&] { return cast(t, dtype); });
  if (is_floating(dtype)) {
    if (auto n = record<CastBackward>(out, {&t})) n->in_dtype = t.dtype();
  }
  return out;
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), t.dtype(), t.device());
  copy_kernel()(out.device(), out, t);
  if (auto n = record<CastBackward>(out, {&t})) n->in_dtype = t.dtype();
  return out;
}

Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : clone(t); }

}  // namespace cgad
