// Tensor: a strided view (shape, strides, offset) of a shared Storage, with a dtype, a device
// and autograd state. Copying a Tensor copies the handle, never the data.
#pragma once
#include <memory>
#include <vector>
#include "core/dtype.h"
#include "core/device.h"
#include "core/storage.h"

namespace cgad {

using Shape = std::vector<int64_t>;
struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const;
  int64_t numel() const;
  int64_t size(int64_t d) const;  // d may be negative
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  // The first element of the view, for kernels: a RuntimeError for memory the host cannot read
  // (the "test" device, CUDA) outside a kernel call.
  void* raw_data() const;
  void* address() const;  // the same pointer, unchecked: for identity and overlap tests only
  template <typename T> T* data() const { return static_cast<T*>(raw_data()); }
  // data<T>(), or null for an undefined tensor (an optional operand: a LayerNorm without bias).
  template <typename T> T* data_or_null() const { return defined() ? data<T>() : nullptr; }
  // The storage's version counter (core/storage.h): every in-place op calls bump_version.
  uint64_t version() const;
  void bump_version() const;

  bool requires_grad() const;
  void set_requires_grad(bool r);  // TypeError for integer tensors; RuntimeError for non-leaves
  Tensor grad() const;
  void set_grad(const Tensor& g);
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const;

  // A new handle to the same data with no autograd history (one of the two ways out of the graph).
  Tensor detach() const;
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::Float32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
  std::weak_ptr<Node> grad_accumulator;  // the leaf's AccumulateGrad, shared by every use
};

int64_t numel_of(const Shape& shape);  // ValueError on negative sizes or overflow
Shape contiguous_strides(const Shape& shape);
int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);  // IndexError when out of range

Tensor empty(const Shape& shape, DType dtype, Device device);
Tensor empty_like(const Tensor& t);
// A view of t's storage (no copy, no autograd history).
Tensor make_view(const Tensor& t, const Shape& shape, const Shape& strides, int64_t offset);

}  // namespace cgad
