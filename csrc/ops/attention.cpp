// scaled_dot_product_attention, flash-style in what it keeps: the forward saves only each query's
// log-sum-exp, never the (L, S) probabilities; the backward recomputes them from q, k and the
// lse (FlashAttention-2's recipe). Each (batch, head) is one thread's work: its scores and
// probabilities live in a per-thread scratch block while the three products run through the
// register-blocked micro GEMM. Causal masking is top-left aligned as in torch (query i sees
// keys 0..i), and panels of keys no query of a panel can see are skipped, not computed.
// Shapes: q (H.., L, E), k (H.., S, E), v (H.., S, Ev), out (H.., L, Ev); H = product of the
// leading (batch, head) dims.
#include <algorithm>
#include <cmath>
#include <vector>
#include "backends/cpu/microgemm.h"
#include "backends/cpu/vmath.h"
#include "ops/nn_common.h"

namespace cgad {

namespace {

struct Dims {
  int64_t H = 1, L = 0, S = 0, E = 0, Ev = 0;
  int64_t keys(int64_t i, bool causal) const { return causal ? std::min(i + 1, S) : S; }
};

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
void score_panel(const T* q, int64_t q_rs, const T* kt, T* s, const Dims& d, int64_t E, bool causal) {
  using cpu::micro::MR;
  using cpu::micro::NR;
  cpu::micro_gemm<T>(
      d.L, d.S, q, q_rs, 1, kt, d.S, s, d.S, [&](int64_t) { return std::pair<int64_t, int64_t>(0, E); },
      [&](int64_t i0) { return causal ? (i0 + MR + NR - 1) / NR * NR : d.S; });
}

// Rows of p outside the mask are zeroed, so the products below may read whole panels.
template <typename T>
void zero_masked(T* row, int64_t n, int64_t S) {
  for (int64_t j = n; j < S; ++j) row[j] = T(0);
}

// Keys [0, k_end) that any row of the panel starting at i0 can see.
inline std::pair<int64_t, int64_t> visible_keys(int64_t i0, const Dims& d, bool causal) {
  return {0, causal ? std::min(d.S, i0 + cpu::micro::MR) : d.S};
}

// Queries [q_begin, L) that can see any key of the panel starting at key j0.
inline std::pair<int64_t, int64_t> seeing_queries(int64_t j0, const Dims& d, bool causal) {
  return {causal ? std::min(j0, d.L) : 0, d.L};
}

// Where each (batch, head) matrix of an operand starts, and its row stride. Operands are read
// in place whatever their leading strides (q, k and v are usually transposed views of the
// fused c_attn output), as long as their last dim is contiguous.
struct HeadMats {
  std::vector<int64_t> off;  // (H,) element offsets
  int64_t rs = 0;            // row stride (dim -2)
};

HeadMats head_mats(const Tensor& t) {
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

// Usable in place: the last dim contiguous (or of size <= 1).
Tensor last_dim_contiguous(const Tensor& t) {
  return t.size(-1) <= 1 || t.strides().back() == 1 ? t : contiguous_data(t);
}

// An empty tensor of `shape` laid out in memory in the dim order of `like` (by its strides):
// attention's outputs and input grads come out in their inputs' layout, so the transposes
// around attention in a GPT block cost no copies (torch's CPU flash attention does the same).
Tensor empty_in_layout_of(const Shape& shape, const Tensor& like) {
  const size_t nd = shape.size();
  std::vector<size_t> order(nd);  // dims from outermost to innermost in memory
  for (size_t i = 0; i < nd; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return like.strides()[a] > like.strides()[b]; });
  if (nd == 0 || order.back() != nd - 1) return empty(shape, like.dtype(), like.device());
  Shape mem_shape, strides(nd);
  for (size_t i : order) mem_shape.push_back(shape[i]);
  Tensor buf = empty(mem_shape, like.dtype(), like.device());
  int64_t st = 1;
  for (size_t i = nd; i-- > 0;) {
    strides[order[i]] = st;
    st *= std::max<int64_t>(shape[order[i]], 1);
  }
  return make_view(buf, shape, strides, 0);
}

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, const HeadMats& mq, const HeadMats& mk,
                       const HeadMats& mv, const HeadMats& mo, const Dims& d, bool causal, T scale) {
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
        T mx = -INFINITY;
        for (int64_t j = 0; j < n; ++j) mx = pi[j] > mx ? pi[j] : mx;
        const T smx = scale * mx;
        double l = 0;
#pragma omp simd reduction(+ : l)
        for (int64_t j = 0; j < n; ++j) {
          pi[j] = vm::exp(scale * pi[j] - smx);
          l += double(pi[j]);
        }
        const T inv = T(1.0 / l);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) pi[j] *= inv;
        zero_masked(pi, n, d.S);
        lse[h * d.L + i] = smx + T(std::log(l));
      }
      // out (L, Ev) = p (L, S) @ v (S, Ev)
      cpu::micro_gemm<T>(
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
                        const Dims& d, bool causal, T scale) {
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
      cpu::micro_gemm<T>(d.S, d.Ev, w.p.data(), 1, d.S, gh, mg.rs, dv + mdv.off[h], mdv.rs, queries,
                         [&](int64_t) { return d.Ev; });
      cpu::micro_gemm<T>(d.S, d.E, w.dp.data(), 1, d.S, qh, mq.rs, dk + mdk.off[h], mdk.rs, queries,
                         [&](int64_t) { return d.E; });
      cpu::micro_gemm<T>(d.L, d.E, w.dp.data(), d.S, 1, kh, mk.rs, dq + mdq.off[h], mdq.rs, keys,
                         [&](int64_t) { return d.E; });
    }
  }
}

struct AttentionBackward : Node {
  Tensor q, k, v, out, lse;  // last dims contiguous (views of the inputs); lse (H.., L)
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
    Tensor g = last_dim_contiguous(g_in);
    Tensor dq = empty_in_layout_of(q.shape(), q), dk = empty_in_layout_of(k.shape(), k),
           dv = empty_in_layout_of(v.shape(), v);
    if (d.H * d.L * d.S == 0) {  // nothing attended: the grads are zero
      for (Tensor* t : {&dq, &dk, &dv}) *t = zeros(t->shape(), t->dtype(), t->device());
      return {dq, dk, dv};
    }
    dispatch_float(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
      using T = typename decltype(tag)::type;
      attention_backward<T>(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
                            lse.data<T>(), g.data<T>(), dq.data<T>(), dk.data<T>(),
                            dv.data<T>(), head_mats(q), head_mats(k), head_mats(v), head_mats(out),
                            head_mats(g), head_mats(dq), head_mats(dk), head_mats(dv), d, causal, T(scale));
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
  Tensor q = last_dim_contiguous(q_in), k = last_dim_contiguous(k_in), v = last_dim_contiguous(v_in);
  Shape oshape = q.shape();
  oshape.back() = d.Ev;
  Shape lshape(q.shape().begin(), q.shape().end() - 1);
  Tensor out = empty_in_layout_of(oshape, q), lse = empty(lshape, q.dtype(), q.device());
  if (d.S == 0) {  // no keys: an empty weighted sum is zero, as torch gives (not 0/0)
    out = zeros(oshape, q.dtype(), q.device());
    lse = full(lshape, -INFINITY, q.dtype(), q.device());
  } else {
    dispatch_float(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
      using T = typename decltype(tag)::type;
      attention_forward<T>(q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(), lse.data<T>(), head_mats(q),
                           head_mats(k), head_mats(v), head_mats(out), d, is_causal, T(scale));
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
