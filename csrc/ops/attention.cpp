// scaled_dot_product_attention, flash-style: each query row computes its scores, softmax and
// output in one pass and keeps only its log-sum-exp, so no (L, S) probability matrix is stored.
// The backward recomputes the probabilities from q, k and the saved lse (FlashAttention-2's
// recipe). Causal masking is top-left aligned as in torch: query i sees keys 0..i, and the
// masked keys are skipped, not computed.
// Shapes: q (H.., L, E), k (H.., S, E), v (H.., S, Ev), out (H.., L, Ev); H = product of the
// leading (batch, head) dims.
#include <cmath>
#include "backends/cpu/vmath.h"
#include "ops/nn_common.h"

namespace cgad {

namespace {

struct Dims {
  int64_t H = 1, L = 0, S = 0, E = 0, Ev = 0;
  int64_t keys(int64_t i, bool causal) const { return causal ? std::min(i + 1, S) : S; }
};

// kt (E, S) = k (S, E) transposed, so a query's scores are an axpy over contiguous keys.
template <typename T>
void transpose_to(const T* k, T* kt, int64_t S, int64_t E) {
  for (int64_t j = 0; j < S; ++j)
    for (int64_t e = 0; e < E; ++e) kt[e * S + j] = k[j * E + e];
}

// s[j] = scale * q . k_j for j < n, from kt (E, S).
template <typename T>
void scores(const T* qi, const T* kt, T* s, int64_t n, int64_t S, int64_t E, T scale) {
  for (int64_t j = 0; j < n; ++j) s[j] = T(0);
  for (int64_t e = 0; e < E; ++e) {
    const T qe = qi[e] * scale;
    const T* ke = kt + e * S;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) s[j] += qe * ke[j];
  }
}

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, const Dims& d, bool causal, T scale) {
  parallel_rows(d.H, d.H * d.L * d.S * (d.E + d.Ev), [&](int64_t h) {
    std::vector<T> kt(size_t(d.E * d.S)), s(size_t(d.S));
    transpose_to(k + h * d.S * d.E, kt.data(), d.S, d.E);
    const T* vh = v + h * d.S * d.Ev;
    for (int64_t i = 0; i < d.L; ++i) {
      const int64_t row = h * d.L + i, n = d.keys(i, causal);
      T* oi = out + row * d.Ev;
      scores(q + row * d.E, kt.data(), s.data(), n, d.S, d.E, scale);
      T mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) mx = s[size_t(j)] > mx ? s[size_t(j)] : mx;
      double l = 0;
#pragma omp simd reduction(+ : l)
      for (int64_t j = 0; j < n; ++j) {
        s[size_t(j)] = vm::exp(s[size_t(j)] - mx);
        l += double(s[size_t(j)]);
      }
      for (int64_t e = 0; e < d.Ev; ++e) oi[e] = T(0);
      for (int64_t j = 0; j < n; ++j) {
        const T p = s[size_t(j)];
        const T* vj = vh + j * d.Ev;
#pragma omp simd
        for (int64_t e = 0; e < d.Ev; ++e) oi[e] += p * vj[e];
      }
      const T inv = T(1.0 / l);
      for (int64_t e = 0; e < d.Ev; ++e) oi[e] *= inv;
      lse[row] = mx + T(std::log(l));
    }
  });
}

// p_ij = exp(s_ij - lse_i); dv_j += p_ij do_i; dp_ij = do_i . v_j; ds_ij = p_ij (dp_ij - do_i . o_i);
// dq_i += scale ds_ij k_j; dk_j += scale ds_ij q_i. One thread per (batch, head).
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* out, const T* lse, const T* g, T* dq, T* dk,
                        T* dv, const Dims& d, bool causal, T scale) {
  parallel_rows(d.H, d.H * d.L * d.S * (d.E + d.Ev), [&](int64_t h) {
    std::vector<T> kt(size_t(d.E * d.S)), vt(size_t(d.Ev * d.S)), p(size_t(d.S)), dp(size_t(d.S));
    const T* kh = k + h * d.S * d.E;
    transpose_to(kh, kt.data(), d.S, d.E);
    transpose_to(v + h * d.S * d.Ev, vt.data(), d.S, d.Ev);
    T* dkh = dk + h * d.S * d.E;
    T* dvh = dv + h * d.S * d.Ev;
    for (int64_t x = 0; x < d.S * d.E; ++x) dkh[x] = T(0);
    for (int64_t x = 0; x < d.S * d.Ev; ++x) dvh[x] = T(0);
    for (int64_t i = 0; i < d.L; ++i) {
      const int64_t row = h * d.L + i, n = d.keys(i, causal);
      const T* qi = q + row * d.E;
      const T* gi = g + row * d.Ev;
      T* dqi = dq + row * d.E;
      scores(qi, kt.data(), p.data(), n, d.S, d.E, scale);
      scores(gi, vt.data(), dp.data(), n, d.S, d.Ev, T(1));
      T Di = 0;
      const T* oi = out + row * d.Ev;
      for (int64_t e = 0; e < d.Ev; ++e) Di += gi[e] * oi[e];
      const T li = lse[row];
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        p[size_t(j)] = vm::exp(p[size_t(j)] - li);
        dp[size_t(j)] = p[size_t(j)] * (dp[size_t(j)] - Di) * scale;  // now ds_ij * scale
      }
      for (int64_t e = 0; e < d.E; ++e) dqi[e] = T(0);
      for (int64_t j = 0; j < n; ++j) {
        const T pj = p[size_t(j)], ds = dp[size_t(j)];
        const T* kj = kh + j * d.E;
        T* dkj = dkh + j * d.E;
        T* dvj = dvh + j * d.Ev;
#pragma omp simd
        for (int64_t e = 0; e < d.E; ++e) {
          dqi[e] += ds * kj[e];
          dkj[e] += ds * qi[e];
        }
#pragma omp simd
        for (int64_t e = 0; e < d.Ev; ++e) dvj[e] += pj * gi[e];
      }
    }
  });
}

struct AttentionBackward : Node {
  Tensor q, k, v, out, lse;  // contiguous; lse (H.., L)
  Dims d;
  bool causal = false;
  double scale = 1.0;
  const char* name() const override { return "ScaledDotProductAttentionBackward"; }
  bool release_saved() override {
    bool had = q.defined();
    q = k = v = out = lse = Tensor();
    return had;
  }
  std::vector<Tensor> backward(const Tensor& g_in) override {
    Tensor g = contiguous_data(g_in);
    Tensor dq = empty(q.shape(), q.dtype()), dk = empty(k.shape(), k.dtype()), dv = empty(v.shape(), v.dtype());
    dispatch_float(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
      using T = typename decltype(tag)::type;
      attention_backward<T>(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>(), g.data<T>(),
                            dq.data<T>(), dk.data<T>(), dv.data<T>(), d, causal, T(scale));
    });
    return {dq, dk, dv};
  }
};

Dims check_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const char* op = "scaled_dot_product_attention";
  check_floating(q, op, "q");
  check_floating(k, op, "k");
  check_floating(v, op, "v");
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  check_same_device(q, k, op);
  check_same_device(q, v, op);
  auto bad = [&](const char* why) {
    return ValueError(str(op, ": ", why, "; got q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
                          shape_str(v.shape()), " (expected q (B, NH, L, E), k (B, NH, S, E), v (B, NH, S, Ev))"));
  };
  if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim()) throw bad("q, k and v need the same number (>= 2) of dims");
  Dims d;
  for (int64_t i = 0; i < q.dim() - 2; ++i) {
    if (k.size(i) != q.size(i) || v.size(i) != q.size(i)) throw bad("batch and head dims differ");
    d.H *= q.size(i);
  }
  d.L = q.size(-2);
  d.E = q.size(-1);
  d.S = k.size(-2);
  d.Ev = v.size(-1);
  if (k.size(-1) != d.E) throw bad("q and k differ in the embedding dim E");
  if (v.size(-2) != d.S) throw bad("k and v differ in the sequence dim S");
  return d;
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, bool is_causal,
                                    std::optional<double> scale_opt) {
  Dims d = check_attention(q_in, k_in, v_in);
  const double scale = scale_opt ? *scale_opt : 1.0 / std::sqrt(double(std::max<int64_t>(d.E, 1)));
  if (!std::isfinite(scale)) throw ValueError(str("scaled_dot_product_attention: scale must be finite, got ", scale));
  Tensor q = contiguous_data(q_in), k = contiguous_data(k_in), v = contiguous_data(v_in);
  Shape oshape = q.shape();
  oshape.back() = d.Ev;
  Shape lshape(q.shape().begin(), q.shape().end() - 1);
  Tensor out = empty(oshape, q.dtype()), lse = empty(lshape, q.dtype());
  if (d.S == 0) {  // no keys: an empty weighted sum is zero, as torch gives (not 0/0)
    out = zeros(oshape, q.dtype());
    lse = full(lshape, -INFINITY, q.dtype());
  } else {
    dispatch_float(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
      using T = typename decltype(tag)::type;
      attention_forward<T>(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>(), d, is_causal, T(scale));
    });
  }
  if (auto n = record<AttentionBackward>(out, {&q_in, &k_in, &v_in})) {
    n->q = q.detach();
    n->k = k.detach();
    n->v = v.detach();
    n->out = out.detach();
    n->lse = lse;
    n->d = d;
    n->causal = is_causal;
    n->scale = scale;
  }
  return out;
}

}  // namespace cgad
