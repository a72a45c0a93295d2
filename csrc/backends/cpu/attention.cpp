// CPU kernels of scaled_dot_product_attention, flash-style in what they keep: the forward saves
// only each query's log-sum-exp, never the (L, S) probabilities; the backward recomputes them
// from q, k and the lse (FlashAttention-2's recipe). Each (batch, head) is one thread's work: its
// scores and probabilities live in a per-thread scratch block while the three products run
// through the register-blocked micro GEMM. Panels of keys no query of a panel can see under the
// causal mask are skipped, not computed.
#include <algorithm>
#include <cmath>
#include <vector>
#include "backends/cpu/attention_bf16.h"
#include "backends/cpu/microgemm.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/register.h"
#include "backends/cpu/vmath.h"
#include "kernels/attention.h"

namespace cgad::cpu {

namespace {

// at (C, R) = a (R, C) (row stride rs) transposed, so the score products read contiguous rows.
template <typename T>
void transpose_to(const T* a, int64_t rs, T* at, int64_t R, int64_t C) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) at[c * R + r] = a[r * rs + c];
}

// Per-thread scratch for one (batch, head) at a time, allocated once per parallel region.
template <typename T>
struct Scratch {
  std::vector<T> kt, vt, p, dp;  // kt (E, S), vt (Ev, S), p and dp (L, S)
};

// s (L, S) = q (L, E) @ kt (E, S), for the keys each panel of rows can see under the mask.
template <typename T>
void score_panel(const T* q, int64_t q_rs, const T* kt, T* s, const AttentionDims& d, int64_t E, bool causal) {
  using micro::MR;
  using micro::NR;
  micro_gemm<T>(
      d.L, d.S, q, q_rs, 1, kt, d.S, s, d.S, [&](int64_t) { return std::pair<int64_t, int64_t>(0, E); },
      [&](int64_t i0) { return causal ? (i0 + MR + NR - 1) / NR * NR : d.S; });
}

// Rows of p outside the mask are zeroed, so the products below may read whole panels.
template <typename T>
void zero_masked(T* row, int64_t n, int64_t S) {
  for (int64_t j = n; j < S; ++j) row[j] = T(0);
}

// Keys [0, k_end) that any row of the panel starting at i0 can see.
inline std::pair<int64_t, int64_t> visible_keys(int64_t i0, const AttentionDims& d, bool causal) {
  return {0, causal ? std::min(d.S, i0 + micro::MR) : d.S};
}

// Queries [q_begin, L) that can see any key of the panel starting at key j0.
inline std::pair<int64_t, int64_t> seeing_queries(int64_t j0, const AttentionDims& d, bool causal) {
  return {causal ? std::min(j0, d.L) : 0, d.L};
}

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, const HeadMats& mq, const HeadMats& mk,
                       const HeadMats& mv, const HeadMats& mo, const AttentionDims& d, bool causal, T scale) {
  const int nt = threads_for(d.H * d.L * d.S * (d.E + d.Ev));
#pragma omp parallel num_threads(nt)
  {
    Scratch<T> w;
    w.kt.resize(size_t(d.E * d.S));
    w.p.resize(size_t(d.L * d.S));
#pragma omp for schedule(static)
    for (int64_t h = 0; h < d.H; ++h) {
      transpose_to(k + mk.off[h], mk.rs, w.kt.data(), d.S, d.E);
      score_panel(q + mq.off[h], mq.rs, w.kt.data(), w.p.data(), d, d.E, causal);
      for (int64_t i = 0; i < d.L; ++i) {  // p_i = softmax(scale * s_i) over the visible keys
        const int64_t n = d.keys(i, causal);
        T* pi = w.p.data() + i * d.S;
        const auto [l, smx] = exp_row(pi, n, scale);
        const T inv = T(1.0 / l);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) pi[j] *= inv;
        zero_masked(pi, n, d.S);
        lse[h * d.L + i] = smx + T(std::log(l));
      }
      // out (L, Ev) = p (L, S) @ v (S, Ev)
      micro_gemm<T>(
          d.L, d.Ev, w.p.data(), d.S, 1, v + mv.off[h], mv.rs, out + mo.off[h], mo.rs,
          [&](int64_t i0) { return visible_keys(i0, d, causal); }, [&](int64_t) { return d.Ev; });
    }
  }
}

// p_ij = exp(scale s_ij - lse_i); dp = do @ v^T; ds_ij = scale p_ij (dp_ij - do_i . o_i);
// dv = p^T @ do; dk = ds^T @ q; dq = ds @ k. One thread per (batch, head).
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* g, T* dq, T* dk,
                        T* dv, const HeadMats& mq, const HeadMats& mk, const HeadMats& mv, const HeadMats& mo,
                        const HeadMats& mg, const HeadMats& mdq, const HeadMats& mdk, const HeadMats& mdv,
                        const AttentionDims& d, bool causal, T scale) {
  const int nt = threads_for(d.H * d.L * d.S * (d.E + d.Ev));
#pragma omp parallel num_threads(nt)
  {
    Scratch<T> w;
    w.kt.resize(size_t(d.E * d.S));
    w.vt.resize(size_t(d.Ev * d.S));
    w.p.resize(size_t(d.L * d.S));
    w.dp.resize(size_t(d.L * d.S));
#pragma omp for schedule(static)
    for (int64_t h = 0; h < d.H; ++h) {
      const T* qh = q + mq.off[h];
      const T* kh = k + mk.off[h];
      const T* gh = g + mg.off[h];
      const T* oh = out + mo.off[h];
      transpose_to(kh, mk.rs, w.kt.data(), d.S, d.E);
      transpose_to(v + mv.off[h], mv.rs, w.vt.data(), d.S, d.Ev);
      score_panel(qh, mq.rs, w.kt.data(), w.p.data(), d, d.E, causal);
      score_panel(gh, mg.rs, w.vt.data(), w.dp.data(), d, d.Ev, causal);  // dp = do @ v^T
      for (int64_t i = 0; i < d.L; ++i) {
        const int64_t n = d.keys(i, causal);
        T* pi = w.p.data() + i * d.S;
        T* dsi = w.dp.data() + i * d.S;
        const T* gi = gh + i * mg.rs;
        const T* oi = oh + i * mo.rs;
        T Di = 0;
        for (int64_t e = 0; e < d.Ev; ++e) Di += gi[e] * oi[e];
        const T li = lse[h * d.L + i];
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
          pi[j] = vm::exp(scale * pi[j] - li);
          dsi[j] = scale * pi[j] * (dsi[j] - Di);
        }
        zero_masked(pi, n, d.S);
        zero_masked(dsi, n, d.S);
      }
      auto queries = [&](int64_t j0) { return seeing_queries(j0, d, causal); };
      auto keys = [&](int64_t i0) { return visible_keys(i0, d, causal); };
      // dv (S, Ev) = p^T @ do; dk (S, E) = ds^T @ q; dq (L, E) = ds @ k
      micro_gemm<T>(d.S, d.Ev, w.p.data(), 1, d.S, gh, mg.rs, dv + mdv.off[h], mdv.rs, queries,
                         [&](int64_t) { return d.Ev; });
      micro_gemm<T>(d.S, d.E, w.dp.data(), 1, d.S, qh, mq.rs, dk + mdk.off[h], mdk.rs, queries,
                         [&](int64_t) { return d.E; });
      micro_gemm<T>(d.L, d.E, w.dp.data(), d.S, 1, kh, mk.rs, dq + mdq.off[h], mdq.rs, keys,
                         [&](int64_t) { return d.E; });
    }
  }
}

// For float32 and float64 inputs the statistics dtype (stats_dtype) is the input's
// own, so lse is read and written as T; bfloat16 has its own kernel (float32 lse).
void attention_forward_k(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                         bool causal, double scale) {
  if (q.dtype() == DType::BFloat16) return attention_forward_bf16(out, lse, q, k, v, causal, scale);
  const AttentionDims d = attention_dims(q, k, v);
  dispatch_float(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    attention_forward<T>(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>(), head_mats(q),
                         head_mats(k), head_mats(v), head_mats(out), d, causal, T(scale));
  });
}

void attention_backward_k(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& g, const Tensor& q,
                          const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, bool causal,
                          double scale) {
  if (q.dtype() == DType::BFloat16)
    return attention_backward_bf16(dq, dk, dv, g, q, k, v, out, lse, causal, scale);
  const AttentionDims d = attention_dims(q, k, v);
  dispatch_float(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using T = typename decltype(tag)::type;
    attention_backward<T>(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>(), g.data<T>(),
                          dq.data<T>(), dk.data<T>(), dv.data<T>(), head_mats(q), head_mats(k), head_mats(v),
                          head_mats(out), head_mats(g), head_mats(dq), head_mats(dk), head_mats(dv), d, causal,
                          T(scale));
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(attention_forward_kernel, attention_forward_k);
CGAD_REGISTER_CPU_KERNEL(attention_backward_kernel, attention_backward_k);

}  // namespace cgad::cpu
