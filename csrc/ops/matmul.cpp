// matmul (1-D, 2-D and batched with broadcasting, like torch) and linear (x @ w^T + b, the
// bias add fused into the GEMM), with their VJPs. Operands are passed to the GEMM kernel with a
// transpose flag instead of being copied whenever their strides allow it. Kernels:
// kernels/linalg.h (and column_sums_kernel of kernels/reduce.h for the bias grad).
#include <algorithm>
#include <utility>
#include "autograd/node.h"
#include "core/shape.h"
#include "kernels/linalg.h"
#include "kernels/reduce.h"
#include "ops/autocast.h"
#include "ops/ops.h"

namespace cgad {

CGAD_DEFINE_KERNEL(gemm_kernel, void(const Tensor&, const Tensor&, bool, const Tensor&, bool, double, double));
CGAD_DEFINE_KERNEL(linear_kernel, void(const Tensor&, const Tensor&, const Tensor&, const Tensor&));
CGAD_DEFINE_KERNEL(bf16_gemm_name_kernel, const char*());

const char* bf16_gemm_impl(Device d) { return bf16_gemm_name_kernel()(d); }

namespace {

// A matrix operand in the GEMM kernel's form (kernels/linalg.h): the stored matrix and whether
// the product uses its transpose.
struct MatArg {
  Tensor mat;  // a view of the operand, or a contiguous copy when its strides fit neither form
  bool trans = false;
};

// m is a view whose last two dims are (R, C); its batch dims keep their strides.
MatArg mat_arg(const Tensor& m) {
  const size_t nd = size_t(m.dim());
  const int64_t R = m.size(-2), C = m.size(-1);
  const int64_t sr = m.strides()[nd - 2], sc = m.strides()[nd - 1];
  if ((sc == 1 || C == 1) && sr >= std::max<int64_t>(C, 1)) return {m, false};
  if ((sr == 1 || R == 1) && sc >= std::max<int64_t>(R, 1)) {  // column-major: its transpose is row-major
    Shape shape = m.shape(), strides = m.strides();
    std::swap(shape[nd - 2], shape[nd - 1]);
    std::swap(strides[nd - 2], strides[nd - 1]);
    return {make_view(m, shape, strides, m.impl()->offset), true};
  }
  // A contiguous copy, its row stride set to max(C, 1): is_contiguous ignores the strides of
  // size-1 dims, so an expanded (1, 1) matrix comes back with row stride 0, which BLAS rejects.
  Tensor c = contiguous_data(m);
  Shape strides = c.strides();
  strides[nd - 2] = std::max<int64_t>(C, 1);
  return {make_view(c, c.shape(), strides, c.impl()->offset), false};
}

void check_matmul(const Tensor& a, const Tensor& b, const char* op) {
  check_same_device(a, b, op);
  if (!is_floating(a.dtype()) || !is_floating(b.dtype()))
    throw TypeError(str(op, ": expected floating point tensors, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype())));
  if (a.dtype() != b.dtype())
    throw TypeError(str(op, ": expected both operands of the same dtype, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype())));
}

// a (..., M, K) @ b (..., K, N) with broadcast batch dims; both at least 2-D.
Tensor matmul_nd_forward(const Tensor& a_in, const Tensor& b_in) {
  const int64_t M = a_in.size(-2), K = a_in.size(-1), K2 = b_in.size(-2), N = b_in.size(-1);
  if (K != K2)
    throw ValueError(str("matmul: shapes ", shape_str(a_in.shape()), " and ", shape_str(b_in.shape()), " cannot be multiplied (", K, " != ", K2, ")"));
  Shape ab(a_in.shape().begin(), a_in.shape().end() - 2), bb(b_in.shape().begin(), b_in.shape().end() - 2);
  Shape batch = broadcast_shapes(ab, bb, "matmul");
  Shape oshape = batch;
  oshape.push_back(M);
  oshape.push_back(N);
  Tensor out = empty(oshape, a_in.dtype(), a_in.device());
  // Fold a's batch into M when b is a single matrix and a's rows are evenly strided.
  if (b_in.dim() == 2 && a_in.dim() > 2) {
    Tensor a2 = contiguous_data(a_in);
    Tensor a_flat = make_view(a2, {a2.numel() / std::max<int64_t>(K, 1), K}, {K, 1}, a2.impl()->offset);
    if (K == 0) a_flat = make_view(a2, {out.numel() / std::max<int64_t>(N, 1), 0}, {0, 1}, 0);
    MatArg A = mat_arg(a_flat), B = mat_arg(b_in);
    Tensor c = make_view(out, {a_flat.size(0), N}, {N, 1}, 0);
    gemm_kernel()(out.device(), c, A.mat, A.trans, B.mat, B.trans, 1.0, 0.0);
    return out;
  }
  Shape a_full = batch, b_full = batch;
  a_full.push_back(M); a_full.push_back(K);
  b_full.push_back(K); b_full.push_back(N);
  Shape ast = broadcast_strides(a_in, a_full), bst = broadcast_strides(b_in, b_full);
  // Keep the matrix strides (broadcast_strides zeroes size-1 dims).
  ast[ast.size() - 2] = a_in.strides()[size_t(a_in.dim() - 2)]; ast.back() = a_in.strides().back();
  bst[bst.size() - 2] = b_in.strides()[size_t(b_in.dim() - 2)]; bst.back() = b_in.strides().back();
  Tensor av = make_view(a_in, a_full, ast, a_in.impl()->offset), bv = make_view(b_in, b_full, bst, b_in.impl()->offset);
  MatArg A = mat_arg(av), B = mat_arg(bv);
  gemm_kernel()(out.device(), out, A.mat, A.trans, B.mat, B.trans, 1.0, 0.0);
  return out;
}

Tensor matmul_nd(const Tensor& a, const Tensor& b);

struct MatmulBackward : Node {
  SavedTensor a{this}, b{this};
  bool fold = false;  // b was one matrix shared by a's batch
  const char* name() const override { return "MatmulBackward"; }
  bool release_saved() override { bool had = a.defined() || b.defined(); a = b = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g) override {
    Tensor ga, gb;
    if (needs_grad(0)) ga = sum_to(matmul_nd(g, transpose(b, -1, -2)), input_shapes[0]);
    if (needs_grad(1)) {
      if (fold) {  // fold the batch: (K, B*M) @ (B*M, N)
        const int64_t K = a.size(-1), N = g.size(-1), rows = numel_of(Shape(a.shape().begin(), a.shape().end() - 1));
        Tensor a2 = reshape(a, {rows, K}), g2 = reshape(g, {rows, N});  // not -1: K or N may be 0
        gb = matmul_nd(transpose(a2, 0, 1), g2);
      } else {
        gb = sum_to(matmul_nd(transpose(a, -1, -2), g), input_shapes[1]);
      }
    }
    return {ga, gb};
  }
};

Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  Tensor out = matmul_nd_forward(a, b);
  if (auto n = record<MatmulBackward>(out, {&a, &b})) {
    if (n->needs_grad(1)) n->a = a;
    if (n->needs_grad(0)) n->b = b;
    n->fold = b.dim() == 2 && a.dim() > 2;
  }
  return out;
}

struct LinearBackward : Node {
  SavedTensor x{this}, w{this};  // x as (rows, in)
  const char* name() const override { return "LinearBackward"; }
  bool release_saved() override { bool had = x.defined() || w.defined(); x = w = Tensor(); return had; }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    const int64_t out_f = w.size(0), in_f = w.size(1);
    Tensor g = contiguous_data(g_in);
    const int64_t rows = numel_of(Shape(g.shape().begin(), g.shape().end() - 1));
    Tensor g2 = make_view(g, {rows, out_f}, {out_f, 1}, g.impl()->offset);
    Tensor gx, gw, gb;
    if (needs_grad(0)) {  // gx (rows, in) = g (rows, out) @ w (out, in)
      gx = empty(input_shapes[0], w.dtype(), w.device());
      gemm_kernel()(w.device(), make_view(gx, {rows, in_f}, {in_f, 1}, 0), g2, false, w, false, 1.0, 0.0);
    }
    if (needs_grad(1)) {  // gw (out, in) = g^T (out, rows) @ x (rows, in)
      gw = empty({out_f, in_f}, w.dtype(), w.device());
      gemm_kernel()(w.device(), gw, g2, true, x, false, 1.0, 0.0);
    }
    if (needs_grad(2)) {  // gb (out) = column sums of g, accumulated in row order
      gb = empty({out_f}, w.dtype(), w.device());
      column_sums_kernel()(w.device(), gb, g, rows, out_f);
    }
    return {gx, gw, gb};
  }
};

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  const Tensor a = autocast_lower(a_in), b = autocast_lower(b_in);
  check_matmul(a, b, "matmul");
  if (a.dim() == 0 || b.dim() == 0)
    throw ValueError(str("matmul: both arguments need at least 1 dim, got shapes ", shape_str(a.shape()), " and ", shape_str(b.shape())));
  if (a.dim() == 1 && b.dim() == 1) {
    if (a.size(0) != b.size(0))
      throw ValueError(str("matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " cannot be multiplied (", a.size(0), " != ", b.size(0), ")"));
    return reshape(matmul_nd(reshape(a, {1, -1}), reshape(b, {-1, 1})), {});
  }
  if (a.dim() == 1) return squeeze(matmul_nd(unsqueeze(a, 0), b), -2);
  if (b.dim() == 1) return squeeze(matmul_nd(a, unsqueeze(b, 1)), -1);
  return matmul_nd(a, b);
}

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  const Tensor x = autocast_lower(x_in), w = autocast_lower(w_in), b = autocast_lower(b_in);
  check_matmul(x, w, "linear");
  if (w.dim() != 2) throw ValueError(str("linear: weight must be 2-D (out, in), got shape ", shape_str(w.shape())));
  if (x.dim() < 1 || x.size(-1) != w.size(1))
    throw ValueError(str("linear: input of shape ", shape_str(x.shape()), " does not match weight of shape ", shape_str(w.shape()), " (in_features ", w.size(1), ")"));
  const int64_t out_f = w.size(0), in_f = w.size(1);
  if (b.defined()) {
    check_matmul(x, b, "linear");
    if (b.dim() != 1 || b.size(0) != out_f)
      throw ValueError(str("linear: bias of shape ", shape_str(b.shape()), " does not match weight of shape ", shape_str(w.shape())));
  }
  Tensor xc = contiguous_data(x), wc = contiguous_data(w);
  Shape oshape = x.shape();
  oshape.back() = out_f;
  Tensor out = empty(oshape, x.dtype(), x.device());
  const int64_t rows = numel_of(Shape(x.shape().begin(), x.shape().end() - 1));
  Tensor x2 = make_view(xc, {rows, in_f}, {in_f, 1}, xc.impl()->offset);
  linear_kernel()(x.device(), make_view(out, {rows, out_f}, {out_f, 1}, 0), x2, wc,
                  b.defined() ? contiguous_data(b) : Tensor());
  if (auto n = record<LinearBackward>(out, {&x, &w, &b})) {
    n->w = wc;
    n->x = x2;
  }
  return out;
}

}  // namespace cgad
