// Kernel stubs of GPT-2's one-position decode step (ops/decode.cpp), used by generation with a
// key/value cache. One new position per sequence makes every linear layer a matrix-vector
// product, bound by the bandwidth of reading the weights, so a block runs as one kernel: no
// graph, no temporaries (the scratch is `work`, allocated once per generation by the caller).
// Shapes: x (B, C) the residual stream of the new position; caches (B, NH, S, HS), S the
// positions they hold; linear weights (out, in) as nn.Linear. Every tensor is contiguous, of
// one floating dtype, on the device the stub is called for, except that with a float32 x the
// weight matrices (a block's four, the lm_head's wte) may be bfloat16 copies, all of a block's
// alike: half the bytes a step reads, float32 arithmetic on the widened weights.
#pragma once
#include "core/dispatch.h"
#include "core/tensor.h"

namespace cgad {

// One GPT-2 block's parameters, in the order of nanoGPT's Block (ln_1, attn, ln_2, mlp).
struct DecodeBlockWeights {
  Tensor ln1_w, ln1_b;        // (C,)
  Tensor attn_w, attn_b;      // c_attn: (3C, C), (3C,); q, k, v side by side
  Tensor attn_proj_w, attn_proj_b;  // (C, C), (C,)
  Tensor ln2_w, ln2_b;        // (C,)
  Tensor fc_w, fc_b;          // (4C, C), (4C,)
  Tensor mlp_proj_w, mlp_proj_b;    // (C, 4C), (C,)
};

// Elements of the scratch a decode step needs: qkv (B, 3C), attention output (B, C), MLP hidden
// (B, 4C), attention scores (B, NH, S), then one layer_norm output (B, C) per thread (each
// thread normalizes x for itself instead of waiting at a barrier). The kernels run on at most as
// many threads as `work` has such slots; decode_logits_ uses the whole buffer as slots.
inline int64_t decode_work_numel(int64_t B, int64_t C, int64_t NH, int64_t S, int64_t threads) {
  return B * (3 * C + C + 4 * C) + B * NH * S + threads * B * C;
}

// x[b] = wte[ids[b]] + wpe[pos]; ids (B,) int64. An id outside [0, V) is IndexError, raised
// before anything is written.
CGAD_DECLARE_KERNEL(decode_embed_kernel,
                    void(const Tensor& x, const Tensor& ids, const Tensor& wte, const Tensor& wpe, int64_t pos));
// x += attn(ln_1(x)), then x += mlp(ln_2(x)), for the position pos (0 <= pos < S): its keys and
// values are written to the caches at pos and the attention reads positions 0..pos. The MLP's
// GELU is the tanh approximation (GPT-2's).
CGAD_DECLARE_KERNEL(decode_block_kernel,
                    void(const Tensor& x, const DecodeBlockWeights& w, const Tensor& k_cache, const Tensor& v_cache,
                         int64_t pos, int64_t n_head, double eps, const Tensor& work));
// logits (B, V) = layer_norm(x; ln_w, ln_b) @ wte^T (the tied lm_head).
CGAD_DECLARE_KERNEL(decode_logits_kernel, void(const Tensor& logits, const Tensor& x, const Tensor& ln_w,
                                               const Tensor& ln_b, const Tensor& wte, double eps,
                                               const Tensor& work));

}  // namespace cgad
