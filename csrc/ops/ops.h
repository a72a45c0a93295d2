// The engine's op API. Every function checks its arguments (ValueError/TypeError/IndexError
// naming the op and shapes), runs the device's kernel, and records its VJP node when grad mode
// is on. One file per op family in csrc/ops holds the forward and its backward side by side.
#pragma once
#include <optional>
#include <utility>
#include <vector>
#include "core/tensor.h"
#include "kernels/op_kinds.h"

namespace cgad {

// A Python number on one side of a binary op. It widens a tensor only across categories
// (bool < int < float), as torch.result_type does.
struct Scalar {
  double value = 0.0;
  bool is_float = true;
  bool is_bool = false;
};
DType result_type(const Tensor& a, const Tensor& b);
DType result_type(const Tensor& a, const Scalar& s);
Tensor scalar_tensor(const Scalar& s, DType dtype, Device device);

// --- filling, copies and conversion (copy.cpp): on the given device or the input's
Tensor zeros(const Shape& shape, DType dtype, Device device);
Tensor full(const Shape& shape, double value, DType dtype, Device device);
// ValueError naming op unless value converts to dtype without overflow (NaN/inf/out of range
// for integers, a finite value beyond the largest float32/bfloat16).
void check_scalar_fits(const char* op, double value, DType dtype);
Tensor zeros_like(const Tensor& t);
void fill_(const Tensor& t, double value);       // in place, no autograd
void copy_(const Tensor& dst, const Tensor& src);  // in place, no autograd; src broadcast to dst
Tensor to_device(const Tensor& t, Device device);  // differentiable; t itself when already there
// Moves a leaf's data (and grad) to `device` in place, so every handle to it (tied parameters,
// an optimizer's references) sees the move: Module.to.
void move_to_device_(const Tensor& t, Device device);
Tensor to_dtype(const Tensor& t, DType dtype);  // differentiable between float dtypes
Tensor clone(const Tensor& t);                  // contiguous copy, differentiable
Tensor contiguous(const Tensor& t);             // t itself when already contiguous

// --- creation (creation.cpp)
Tensor arange(double start, double end, double step, DType dtype, Device device);
Tensor randn(const Shape& shape, DType dtype, Device device);
Tensor rand(const Shape& shape, DType dtype, Device device);
Tensor tril(const Tensor& t, int64_t diagonal);
Tensor multinomial(const Tensor& probs, int64_t num_samples);

// --- elementwise (binary.cpp, unary.cpp, compare.cpp)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
void add_(Tensor& a, const Tensor& b);  // in place, no autograd (grad accumulation, optimizers)
void mul_scalar_(Tensor& a, double s);  // in place, no autograd
Tensor neg(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor compare(const Tensor& a, const Tensor& b, CompareOp op);  // bool, no grad
Tensor masked_fill(const Tensor& t, const Tensor& mask, double value);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// --- reductions (reduce.cpp)
Tensor sum(const Tensor& t, std::vector<int64_t> dims, bool keepdim);  // dims empty: all
Tensor mean(const Tensor& t, std::vector<int64_t> dims, bool keepdim);
Tensor max_all(const Tensor& t);
std::pair<Tensor, Tensor> max_dim(const Tensor& t, int64_t dim, bool keepdim);  // values get grad
Tensor argmax(const Tensor& t, std::optional<int64_t> dim, bool keepdim);
std::pair<Tensor, Tensor> topk(const Tensor& t, int64_t k, int64_t dim);  // forward only
Tensor sum_to(const Tensor& t, const Shape& shape);  // reverses broadcasting

// --- views and shape ops (views.cpp); all differentiable
Tensor reshape(const Tensor& t, Shape shape);  // one -1 allowed; copies only when it must
Tensor view(const Tensor& t, Shape shape);     // never copies: RuntimeError when it would have to
Tensor transpose(const Tensor& t, int64_t d0, int64_t d1);
Tensor permute(const Tensor& t, std::vector<int64_t> dims);
Tensor unsqueeze(const Tensor& t, int64_t dim);
Tensor squeeze(const Tensor& t, std::optional<int64_t> dim);
Tensor expand(const Tensor& t, Shape shape);
Tensor narrow(const Tensor& t, int64_t dim, int64_t start, int64_t length);
Tensor slice(const Tensor& t, int64_t dim, int64_t start, int64_t stop, int64_t step);  // step > 0
Tensor select(const Tensor& t, int64_t dim, int64_t index);
std::vector<Tensor> split(const Tensor& t, std::vector<int64_t> sizes, int64_t dim);
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);

// --- linear algebra (matmul.cpp)
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);  // x @ w^T + b, b may be undefined
const char* bf16_gemm_impl(Device d);  // which bfloat16 GEMM d runs (CPU: "avx512_bf16" or "fallback")

// --- fused nn ops (one file each)
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor gelu(const Tensor& x, bool tanh_approx);
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& w, const Tensor& b, double eps);
Tensor embedding(const Tensor& idx, const Tensor& w);
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index);
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool is_causal,
                                    std::optional<double> scale);
Tensor dropout(const Tensor& x, double p, bool training);

}  // namespace cgad

namespace cgad {
// Data-level helpers for kernels and VJPs: no autograd recorded.
Tensor cast(const Tensor& t, DType dtype);        // t itself when the dtype already matches
Tensor contiguous_data(const Tensor& t);          // t itself when contiguous, else a copy
// RuntimeError naming the op and both devices unless a and b are on one device.
void check_same_device(const Tensor& a, const Tensor& b, const char* op);
}  // namespace cgad
