// Kernel stubs of the fused nn ops (ops/layer_norm.cpp, softmax.cpp, gelu.cpp, cross_entropy.cpp,
// embedding.cpp, dropout.cpp). Every tensor argument is contiguous and on the device the stub is
// called for; outputs, saved statistics and grads are allocated by the op. Rows: (N, C) or
// (N, V) matrices of the op's dtype.
#pragma once
#include "core/dispatch.h"
#include "core/tensor.h"

namespace cgad {

// y (N, C) = layer_norm of each row of x, times w and plus b (C,) where defined; writes each
// row's mean and rstd (N,) in stats_dtype.
CGAD_DECLARE_KERNEL(layer_norm_forward_kernel, void(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                                    const Tensor& x, const Tensor& w, const Tensor& b, int64_t N,
                                                    int64_t C, double eps));
// The grads of layer_norm from g (N, C) and the forward's x, w (or undefined), mean and rstd:
// dx (N, C), dw and db (C,), each written only where defined.
CGAD_DECLARE_KERNEL(layer_norm_backward_kernel, void(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                                     const Tensor& g, const Tensor& x, const Tensor& w,
                                                     const Tensor& mean, const Tensor& rstd, int64_t N, int64_t C));
// y (N, C) = softmax (log=false) or log_softmax (log=true) of each row of x.
CGAD_DECLARE_KERNEL(softmax_forward_kernel, void(const Tensor& y, const Tensor& x, int64_t N, int64_t C, bool log));
// dx (N, C) from g and the forward's output y.
CGAD_DECLARE_KERNEL(softmax_backward_kernel, void(const Tensor& dx, const Tensor& g, const Tensor& y, int64_t N,
                                                  int64_t C, bool log));
// y = gelu(x) elementwise, exact (erf) or tanh-approximated.
CGAD_DECLARE_KERNEL(gelu_forward_kernel, void(const Tensor& y, const Tensor& x, bool tanh_approx));
// dx = g * gelu'(x) elementwise.
CGAD_DECLARE_KERNEL(gelu_backward_kernel, void(const Tensor& dx, const Tensor& x, const Tensor& g, bool tanh_approx));
// loss (0-d, the logits' dtype) = mean over the non-ignored targets of the rows' negative log
// likelihood (NaN when every target is ignored); lse (N,) in stats_dtype gets each kept row's
// log-sum-exp. logits (N, V) may carry its (B, T, V) shape, targets (N,) are int64.
// A target outside [0, V) other than ignore_index is IndexError, raised before anything is written.
CGAD_DECLARE_KERNEL(cross_entropy_forward_kernel, void(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                                       const Tensor& targets, int64_t ignore_index));
// dx (the logits' shape; may be the logits' own buffer) = (softmax - onehot) * g / count, zero on
// ignored rows; g is the 0-d float64 incoming grad, count the number of kept targets.
CGAD_DECLARE_KERNEL(cross_entropy_backward_kernel, void(const Tensor& dx, const Tensor& logits, const Tensor& lse,
                                                        const Tensor& targets, const Tensor& g, int64_t ignore_index));
// out (ids' shape + (C,)) = the rows of the (V, C) table w at the int64 ids. An id outside
// [0, V) is IndexError, raised before anything is written.
CGAD_DECLARE_KERNEL(embedding_forward_kernel, void(const Tensor& out, const Tensor& w, const Tensor& ids));
// dw (V, C), zeroed, += the rows of g (N, C) at the int64 ids (N,).
CGAD_DECLARE_KERNEL(embedding_backward_kernel, void(const Tensor& dw, const Tensor& g, const Tensor& ids));
// mask[i] = 0 with probability p, else 1/(1-p) (0 when p = 1), from Philox(seed) counters
// base, base+1, ... (one counter per 4 elements), which the op reserved.
CGAD_DECLARE_KERNEL(dropout_mask_kernel, void(const Tensor& mask, double p, uint64_t seed, uint64_t base));

}  // namespace cgad
