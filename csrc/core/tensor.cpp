#include "core/tensor.h"

#include "core/dispatch.h"

namespace cgad {

const Shape& Tensor::shape() const { return impl_->shape; }
const Shape& Tensor::strides() const { return impl_->strides; }
int64_t Tensor::dim() const { return int64_t(impl_->shape.size()); }
int64_t Tensor::numel() const {
  int64_t n = 1;
  for (auto s : impl_->shape) n *= s;
  return n;
}
int64_t Tensor::size(int64_t d) const { return impl_->shape[size_t(wrap_dim(d, dim(), "size"))]; }
DType Tensor::dtype() const { return impl_->dtype; }
Device Tensor::device() const { return impl_->storage->device(); }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element is ever addressed, as torch
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (impl_->shape[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= impl_->shape[i];
  }
  return true;
}

void* Tensor::address() const {
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * int64_t(itemsize(impl_->dtype));
}

void* Tensor::raw_data() const {
  const Device d = impl_->storage->device();
  if (!d.host_readable() && !KernelScope::active())
    throw RuntimeError(str("the data of a ", d.str(), " tensor was read outside a kernel; copy it to the CPU first (.cpu(), .numpy())"));
  return address();
}

uint64_t Tensor::version() const { return impl_->storage->version(); }
void Tensor::bump_version() const { impl_->storage->bump_version(); }

bool Tensor::requires_grad() const { return impl_->requires_grad; }

void Tensor::set_requires_grad(bool r) {
  if (r && !is_floating(dtype()))
    throw TypeError(str("requires_grad: only floating point tensors can require gradients, got ", dtype_name(dtype())));
  if (!r && impl_->grad_fn)
    throw RuntimeError("requires_grad_(False): only leaf tensors can stop requiring grad; use .detach()");
  impl_->requires_grad = r;
}

Tensor Tensor::grad() const { return impl_->grad; }
void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && g.shape() != shape())
    throw ValueError(str("grad: assigned grad of shape ", shape_str(g.shape()), " to a tensor of shape ", shape_str(shape())));
  impl_->grad = g;
}
const std::shared_ptr<Node>& Tensor::grad_fn() const { return impl_->grad_fn; }
bool Tensor::is_leaf() const { return impl_->grad_fn == nullptr; }

Tensor Tensor::detach() const {
  auto t = std::make_shared<TensorImpl>();
  t->storage = impl_->storage;
  t->offset = impl_->offset;
  t->shape = impl_->shape;
  t->strides = impl_->strides;
  t->dtype = impl_->dtype;
  return Tensor(std::move(t));
}

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (auto s : shape) {
    if (s < 0) throw ValueError(str("invalid shape ", shape_str(shape), ": sizes must be non-negative"));
    if (s != 0 && n > INT64_MAX / s) throw ValueError(str("invalid shape ", shape_str(shape), ": too many elements"));
    n *= s;
  }
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape st(shape.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    // only an empty tensor's sizes can overflow here, and its strides are never used: saturate
    if (__builtin_mul_overflow(acc, std::max<int64_t>(shape[i], 1), &acc)) acc = INT64_MAX;
  }
  return st;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);  // a 0-d tensor accepts dim 0 and -1, like torch
  if (d < -n || d >= n)
    throw IndexError(str(op, ": dim ", d, " is out of range for a tensor with ", ndim, " dims (expected [", -n, ", ", n - 1, "])"));
  return d < 0 ? d + n : d;
}

Tensor empty(const Shape& shape, DType dtype, Device device) {
  int64_t n = numel_of(shape);
  size_t isz = itemsize(dtype);
  if (n > 0 && uint64_t(n) > uint64_t(INT64_MAX) / isz)
    throw MemoryError(str("cannot allocate a tensor of shape ", shape_str(shape)));
  auto t = std::make_shared<TensorImpl>();
  t->storage = std::make_shared<Storage>(size_t(n) * isz, device);
  t->shape = shape;
  t->strides = contiguous_strides(shape);
  t->dtype = dtype;
  return Tensor(std::move(t));
}

Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }

Tensor make_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset) {
  auto v = std::make_shared<TensorImpl>();
  v->storage = t.impl()->storage;
  v->offset = offset;
  v->shape = shape;
  v->strides = strides;
  v->dtype = t.dtype();
  return Tensor(std::move(v));
}

}  // namespace cgad
