// Kernel stubs of scaled_dot_product_attention (ops/attention.cpp). Shapes: q (H.., L, E),
// k (H.., S, E), v (H.., S, Ev), out (H.., L, Ev), lse (H.., L); H is the product of the leading
// (batch, head) dims. q, k, v, out, the upstream grad and the input grads may have any leading
// strides but a contiguous last dim (or one of size <= 1); lse is contiguous.
#pragma once
#include <algorithm>
#include "core/dispatch.h"
#include "core/tensor.h"

namespace cgad {

struct AttentionDims {
  int64_t H = 1, L = 0, S = 0, E = 0, Ev = 0;
  // Keys query i sees: causal masking is top-left aligned as in torch (query i sees keys 0..i).
  int64_t keys(int64_t i, bool causal) const { return causal ? std::min(i + 1, S) : S; }
};

// The dims of q, k, v whose shapes the op has checked.
inline AttentionDims attention_dims(const Tensor& q, const Tensor& k, const Tensor& v) {
  AttentionDims d;
  for (int64_t i = 0; i < q.dim() - 2; ++i) d.H *= q.size(i);
  d.L = q.size(-2);
  d.E = q.size(-1);
  d.S = k.size(-2);
  d.Ev = v.size(-1);
  return d;
}

// out = softmax(scale * q @ k^T (masked when causal)) @ v, and lse[i] = the log-sum-exp of
// query i's scaled scores. S > 0 (the op answers S = 0 itself).
CGAD_DECLARE_KERNEL(attention_forward_kernel, void(const Tensor& out, const Tensor& lse, const Tensor& q,
                                                   const Tensor& k, const Tensor& v, bool causal, double scale));
// dq, dk, dv (written, in their own layouts) from the upstream grad g (H.., L, Ev) and the
// forward's q, k, v, out and lse. H, L and S all > 0 (the op answers empty problems itself).
CGAD_DECLARE_KERNEL(attention_backward_kernel,
                    void(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& g, const Tensor& q,
                         const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, bool causal,
                         double scale));

}  // namespace cgad
