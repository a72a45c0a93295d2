// GPT-2's one-position decode step for cached generation (ops/decode.cpp): in-place ops on
// buffers the caller allocated once, with no autograd. Kernels: kernels/decode.h.
#pragma once
#include <vector>
#include "core/tensor.h"

namespace cgad {

// x (B, C) = wte[ids] + wpe[pos]; ids (B, 1) or (B,) integer.
void decode_embed_(const Tensor& x, const Tensor& ids, const Tensor& wte, const Tensor& wpe, int64_t pos);
// One block at position pos on x (B, C) in place, through the caches (B, NH, S, HS). weights: the
// 12 tensors of kernels/decode.h's DecodeBlockWeights, in its order (its four matrices may be
// bfloat16 with a float32 x); work: a flat buffer of at least decode_work_size(B, C, NH, S, 1)
// elements (one more (B, C) per extra thread to use).
void decode_block_(const Tensor& x, const std::vector<Tensor>& weights, const Tensor& k_cache,
                   const Tensor& v_cache, int64_t pos, int64_t n_head, double eps, const Tensor& work);
// logits (B, V) = layer_norm(x) @ wte^T; wte may be bfloat16 with a float32 x.
void decode_logits_(const Tensor& logits, const Tensor& x, const Tensor& ln_w, const Tensor& ln_b,
                    const Tensor& wte, double eps, const Tensor& work);
int64_t decode_work_size(int64_t B, int64_t C, int64_t n_head, int64_t S, int64_t threads);
// Whether the kernel table has all three decode kernels for the device's type; generation takes
// a path through the ordinary ops where it has not (a backend that implements the ops only).
bool decode_supported(Device device);

}  // namespace cgad
