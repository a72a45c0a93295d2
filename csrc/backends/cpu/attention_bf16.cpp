// The bfloat16 CPU attention (attention_bf16.h): the same flash-style recipe as the float32
// kernel (only the lse is saved; the backward recomputes P), with its five products on the bf16
// GEMM, one (batch, head) per thread. Under the causal mask the products run in row (or key)
// blocks of kBlock, each over the keys (or queries) the block can see, so about half of the
// masked work is skipped rather than all of it: the bf16 GEMM runs whole problems, and finer
// blocks would pack the same operand more often than they save.
#include <algorithm>
#include <cmath>
#include <vector>
#include "backends/cpu/attention_bf16.h"
#include "backends/cpu/gemm_bf16.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/vmath.h"

namespace cgad::cpu {

namespace {

constexpr int64_t kBlock = 64;

// s[i0.., :keys] (rows of stride S) = a (rows, E) @ b (keys, E)^T for each row block, over the
// keys the block can see.
void scores(const bf16* a, int64_t a_rs, const bf16* b, int64_t b_rs, float* s, const AttentionDims& d, int64_t E,
            bool causal) {
  const int64_t bm = causal ? kBlock : d.L;
  for (int64_t i0 = 0; i0 < d.L; i0 += bm) {
    const int64_t m = std::min(bm, d.L - i0), keys = causal ? std::min(d.S, i0 + m) : d.S;
    gemm_bf16_serial<float>(false, true, m, keys, E, 1.0f, a + i0 * a_rs, a_rs, b, b_rs, 0.0f, s + i0 * d.S, d.S);
  }
}

// c (L, N) = p (L, S) @ b (S, N), each row block over the keys it can see (p is zero past them).
void rows_times(const bf16* p, const bf16* b, int64_t b_rs, bf16* c, int64_t c_rs, const AttentionDims& d, int64_t N,
                bool causal) {
  const int64_t bm = causal ? kBlock : d.L;
  for (int64_t i0 = 0; i0 < d.L; i0 += bm) {
    const int64_t m = std::min(bm, d.L - i0), keys = causal ? std::min(d.S, i0 + m) : d.S;
    gemm_bf16_serial<bf16>(false, false, m, N, keys, 1.0f, p + i0 * d.S, d.S, b, b_rs, 0.0f, c + i0 * c_rs, c_rs);
  }
}

// c (S, N) = p (L, S)^T @ b (L, N), each block of keys over the queries that can see it.
void cols_times(const bf16* p, const bf16* b, int64_t b_rs, bf16* c, int64_t c_rs, const AttentionDims& d, int64_t N,
                bool causal) {
  const int64_t bm = causal ? kBlock : d.S;
  for (int64_t j0 = 0; j0 < d.S; j0 += bm) {
    const int64_t m = std::min(bm, d.S - j0), q0 = causal ? std::min(j0, d.L) : 0;
    if (q0 == d.L) {  // no query sees these keys: their grads are zero
      for (int64_t j = j0; j < j0 + m; ++j) std::fill(c + j * c_rs, c + j * c_rs + N, bf16(0.0f));
      continue;
    }
    gemm_bf16_serial<bf16>(true, false, m, N, d.L - q0, 1.0f, p + q0 * d.S + j0, d.S, b + q0 * b_rs, b_rs, 0.0f,
                           c + j0 * c_rs, c_rs);
  }
}

// sum_e a[e] b[e] in float32, in 16 interleaved partial sums (a vector; the single running sum
// was a chain of dependent adds)
float dot_bf16(const bf16* a, const bf16* b, int64_t n) {
  float part[16] = {};
  int64_t e = 0;
  for (; e + 16 <= n; e += 16)
    for (int u = 0; u < 16; ++u) part[u] += float(a[e + u]) * float(b[e + u]);
  for (; e < n; ++e) part[e % 16] += float(a[e]) * float(b[e]);
  float s = 0;
  for (float v : part) s += v;
  return s;
}

struct Scratch {
  std::vector<float> s, dp;   // (L, S) scores, and dP = dO V^T
  std::vector<bf16> p, ds;    // (L, S) P and dS rounded to bf16
  void size(const AttentionDims& d, bool backward) {
    s.resize(size_t(d.L * d.S));
    p.resize(size_t(d.L * d.S));
    if (backward) {
      dp.resize(size_t(d.L * d.S));
      ds.resize(size_t(d.L * d.S));
    }
  }
};

}  // namespace

void attention_forward_bf16(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k, const Tensor& v,
                            bool causal, double scale_d) {
  const AttentionDims d = attention_dims(q, k, v);
  const HeadMats mq = head_mats(q), mk = head_mats(k), mv = head_mats(v), mo = head_mats(out);
  const bf16 *qp = q.data<bf16>(), *kp = k.data<bf16>(), *vp = v.data<bf16>();
  bf16* op = out.data<bf16>();
  float* lp = lse.data<float>();
  const float scale = float(scale_d);
  const int nt = threads_for(d.H * d.L * d.S * (d.E + d.Ev));
#pragma omp parallel num_threads(nt)
  {
    Scratch w;
    w.size(d, false);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < d.H; ++h) {
      scores(qp + mq.off[h], mq.rs, kp + mk.off[h], mk.rs, w.s.data(), d, d.E, causal);
      for (int64_t i = 0; i < d.L; ++i) {  // p_i = softmax(scale * s_i) over the visible keys
        const int64_t n = d.keys(i, causal);
        float* si = w.s.data() + i * d.S;
        bf16* pi = w.p.data() + i * d.S;
        const auto [l, smx] = exp_row(si, n, scale);
        const float inv = float(1.0 / l);
        for (int64_t j = 0; j < n; ++j) pi[j] = bf16(si[j] * inv);
        std::fill(pi + n, pi + d.S, bf16(0.0f));
        lp[h * d.L + i] = smx + float(std::log(l));
      }
      rows_times(w.p.data(), vp + mv.off[h], mv.rs, op + mo.off[h], mo.rs, d, d.Ev, causal);  // out = P V
    }
  }
}

// p_ij = exp(scale s_ij - lse_i); dp = dO V^T; ds_ij = scale p_ij (dp_ij - dO_i . O_i);
// dV = P^T dO; dK = dS^T Q; dQ = dS K.
void attention_backward_bf16(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& g, const Tensor& q,
                             const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse, bool causal,
                             double scale_d) {
  const AttentionDims d = attention_dims(q, k, v);
  const HeadMats mq = head_mats(q), mk = head_mats(k), mv = head_mats(v), mo = head_mats(out), mg = head_mats(g),
                 mdq = head_mats(dq), mdk = head_mats(dk), mdv = head_mats(dv);
  const bf16 *qp = q.data<bf16>(), *kp = k.data<bf16>(), *vp = v.data<bf16>(), *op = out.data<bf16>(),
             *gp = g.data<bf16>();
  bf16 *dqp = dq.data<bf16>(), *dkp = dk.data<bf16>(), *dvp = dv.data<bf16>();
  const float* lp = lse.data<float>();
  const float scale = float(scale_d);
  const int nt = threads_for(d.H * d.L * d.S * (d.E + d.Ev));
#pragma omp parallel num_threads(nt)
  {
    Scratch w;
    w.size(d, true);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < d.H; ++h) {
      const bf16 *qh = qp + mq.off[h], *kh = kp + mk.off[h], *gh = gp + mg.off[h], *oh = op + mo.off[h];
      scores(qh, mq.rs, kh, mk.rs, w.s.data(), d, d.E, causal);
      scores(gh, mg.rs, vp + mv.off[h], mv.rs, w.dp.data(), d, d.Ev, causal);  // dP = dO V^T
      for (int64_t i = 0; i < d.L; ++i) {
        const int64_t n = d.keys(i, causal);
        const float* si = w.s.data() + i * d.S;
        const float* dpi = w.dp.data() + i * d.S;
        bf16* pi = w.p.data() + i * d.S;
        bf16* dsi = w.ds.data() + i * d.S;
        const bf16* gi = gh + i * mg.rs;
        const bf16* oi = oh + i * mo.rs;
        const float Di = dot_bf16(gi, oi, d.Ev);
        const float li = lp[h * d.L + i];
        for (int64_t j = 0; j < n; ++j) {
          const float pij = vm::exp(scale * si[j] - li);
          pi[j] = bf16(pij);
          dsi[j] = bf16(scale * pij * (dpi[j] - Di));
        }
        std::fill(pi + n, pi + d.S, bf16(0.0f));
        std::fill(dsi + n, dsi + d.S, bf16(0.0f));
      }
      cols_times(w.p.data(), gh, mg.rs, dvp + mdv.off[h], mdv.rs, d, d.Ev, causal);   // dV = P^T dO
      cols_times(w.ds.data(), qh, mq.rs, dkp + mdk.off[h], mdk.rs, d, d.E, causal);   // dK = dS^T Q
      rows_times(w.ds.data(), kh, mk.rs, dqp + mdq.off[h], mdq.rs, d, d.E, causal);   // dQ = dS K
    }
  }
}

}  // namespace cgad::cpu
