// Shared by the CPU attention kernels (float32/float64 in attention.cpp, bfloat16 in
// attention_bf16.cpp): where each (batch, head) matrix of an operand lies, and the bf16 entry
// points the dtype dispatch calls.
#pragma once
#include <utility>
#include <vector>
#include "backends/cpu/vmath.h"
#include "core/tensor.h"
#include "kernels/attention.h"

namespace cgad::cpu {

// Where each (batch, head) matrix of an operand starts, and its row stride. Operands are read
// in place whatever their leading strides (q, k and v are usually transposed views of the
// fused c_attn output), as long as their last dim is contiguous.
struct HeadMats {
  std::vector<int64_t> off;  // (H,) element offsets
  int64_t rs = 0;            // row stride (dim -2)
};

inline HeadMats head_mats(const Tensor& t) {
  HeadMats m;
  const int64_t nd = t.dim();
  m.rs = t.strides()[size_t(nd - 2)];
  m.off.assign(1, 0);
  for (int64_t dim = 0; dim < nd - 2; ++dim) {  // row-major over the leading dims
    std::vector<int64_t> next;
    next.reserve(m.off.size() * size_t(t.size(dim)));
    for (int64_t base : m.off)
      for (int64_t i = 0; i < t.size(dim); ++i) next.push_back(base + i * t.strides()[size_t(dim)]);
    m.off = std::move(next);
  }
  return m;
}

// One query's row of n visible scores s becomes exp(scale * s - scale * max), unnormalized;
// returns their sum (in double: the row's normalizer) and scale * max, from which lse follows.
template <typename T>
std::pair<double, T> exp_row(T* s, int64_t n, T scale) {
  T mx = -INFINITY;
  // a vector max (the scalar loop was a chain of dependent maxss: half of the bf16 forward's own
  // time); a NaN score reaches the result through the exp sum either way
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = s[j] > mx ? s[j] : mx;
  const T smx = scale * mx;
  double l = 0;
#pragma omp simd reduction(+ : l)
  for (int64_t j = 0; j < n; ++j) {
    s[j] = vm::exp(scale * s[j] - smx);
    l += double(s[j]);
  }
  return {l, smx};
}

// bfloat16 q, k, v (and out, g, dq, dk, dv), float32 lse: QK^T, PV and the backward's products
// on the bf16 GEMM (float32 accumulation), softmax statistics in float32, P and dS rounded to
// bf16 once before they are multiplied (as FlashAttention's bf16 path).
void attention_forward_bf16(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                            bool causal, double scale);
void attention_backward_bf16(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& g, const Tensor& q,
                             const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, bool causal,
                             double scale);

}  // namespace cgad::cpu
