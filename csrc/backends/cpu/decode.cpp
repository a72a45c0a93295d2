// CPU kernels of the decode step (kernels/decode.h). With one new position per sequence every
// linear layer is a matrix-vector product per sequence: each weight is read once from memory
// per step and used B times, so the time is the weights' bytes over the memory bandwidth. The
// threads split each layer's output features (contiguous weight rows) on a static schedule. A
// whole block is one parallel region with three barriers, so a step forks the team once per
// block instead of once per op. Every dot product is summed in a fixed order, so results do not
// depend on the thread count. bf16 copies of the weight matrices (with float32 activations)
// halve the bytes, so the time, of a step.
#include <algorithm>
#include <cmath>
#include <limits>
#include "backends/cpu/layer_norm_row.h"
#include "backends/cpu/parallel.h"
#include "backends/cpu/register.h"
#include "backends/cpu/vmath.h"
#include "kernels/decode.h"

namespace cgad::cpu {

namespace {

constexpr int kLanes = 16;  // floats per vector register (512-bit)
constexpr int kChains = 4;  // independent accumulators per dot product, to cover FMA latency
constexpr int kBatch = 4;   // sequences sharing each load of a weight row
// Weights are prefetched this many bytes ahead of the loads: the hardware prefetcher stops at
// every 4 KiB page and restarts only after misses, software prefetches run across
// (docs/performance.md: 2 KiB ahead read 5-15% faster than none, 512 B and 4 KiB less so).
constexpr int64_t kPrefetchBytes = 2048;
constexpr int64_t kLineBytes = 64;

// dots[b] = sum_k x[b * K + k] * W[k] for BB sequences and one weight row (of T, or of bf16
// widened to T exactly, for half the bytes per weight). The row is read
// front to back, so the weights stream through memory in one linear sweep that the hardware
// prefetcher follows (tiles of four rows read as interleaved short streams were slower: lm_head
// at 9 against 13-16 GB/s on one thread);
// x (B, K) stays in L1/L2. The BB * kChains accumulators stay in registers; the summation order
// is fixed.
template <typename T, typename TW, int BB>
inline void dot_row(const T* x, const TW* W, int64_t K, T (&dots)[BB]) {
  // with several sequences their dot products are the independent chains already; more would
  // only add loads of x
  constexpr int Chains = BB >= kBatch ? 1 : kChains;
  constexpr int64_t step = Chains * kLanes;
  T acc[BB][Chains][kLanes] = {};
  constexpr int64_t ahead = kPrefetchBytes / sizeof(TW), line = kLineBytes / sizeof(TW);
  const int64_t kv = K - K % step;
  for (int64_t k = 0; k < kv; k += step) {
    // past the row's end this is the next row's start, the next one read; a prefetch never faults
    for (int64_t l = 0; l < step; l += line) __builtin_prefetch(W + k + ahead + l, 0, 3);
    for (int c = 0; c < Chains; ++c)
      for (int b = 0; b < BB; ++b) {
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) acc[b][c][l] += x[b * K + k + c * kLanes + l] * T(W[k + c * kLanes + l]);
      }
  }
  for (int b = 0; b < BB; ++b) {
    for (int c = 1; c < Chains; ++c)
      for (int l = 0; l < kLanes; ++l) acc[b][0][l] += acc[b][c][l];
    // lanes summed pairwise (l with l + half), a fixed order that stays in vector registers
    for (int half = kLanes / 2; half > 0; half /= 2)
      for (int l = 0; l < half; ++l) acc[b][0][l] += acc[b][0][l + half];
    T s = acc[b][0][0];
    for (int64_t k = kv; k < K; ++k) s += x[b * K + k] * T(W[k]);
    dots[b] = s;
  }
}

enum class Epilogue { Store, AddTo, GeluTanh };

template <typename T>
inline T gelu_tanh(T v) {  // the formula of the gelu kernel (backends/cpu/gelu.cpp)
  const T u = T(0.7978845608028654) * (v + T(0.044715) * v * v * v);
  return T(0.5) * v * (T(1) + vm::tanh(u));
}

// out (B, N) op= x (B, K) @ W^T + bias (W (N, K), bias (N,) or null) for the rows [n0, n1).
template <typename T, Epilogue E, typename TW>
void gemv_rows(const T* x, int64_t B, int64_t K, const TW* W, const T* bias, int64_t N, T* out, int64_t n0,
               int64_t n1) {
  auto put = [&](int64_t b, int64_t n, T dot) {
    const T v = dot + (bias ? bias[n] : T(0));
    T& o = out[b * N + n];
    if constexpr (E == Epilogue::Store) o = v;
    if constexpr (E == Epilogue::AddTo) o += v;
    if constexpr (E == Epilogue::GeluTanh) o = gelu_tanh(v);
  };
  for (int64_t n = n0; n < n1; ++n) {
    const TW* Wn = W + n * K;
    int64_t b = 0;
    for (; b + kBatch <= B; b += kBatch) {
      T d[kBatch];
      dot_row<T, TW, kBatch>(x + b * K, Wn, K, d);
      for (int i = 0; i < kBatch; ++i) put(b + i, n, d[i]);
    }
    for (; b < B; ++b) {
      T d[1];
      dot_row<T, TW, 1>(x + b * K, Wn, K, d);
      put(b, n, d[0]);
    }
  }
}

// The calling thread's static share [begin, end) of n items, in whole tiles of `tile` items.
struct Share {
  int64_t begin, end;
};
inline Share my_share(int64_t n, int64_t tile = 1) {
  const int64_t tiles = (n + tile - 1) / tile, t = omp_get_thread_num(), nt = omp_get_num_threads();
  return {std::min(n, tiles * t / nt * tile), std::min(n, tiles * (t + 1) / nt * tile)};
}

// The thread's share of out (B, N) op= x @ W^T + bias, split over output features. Inside a
// parallel region; no barrier.
template <typename T, Epilogue E, typename TW>
void gemv_share(const T* x, int64_t B, int64_t K, const TW* W, const T* bias, int64_t N, T* out) {
  const Share s = my_share(N, 16);  // whole cache lines of a float output row per thread
  gemv_rows<T, E>(x, B, K, W, bias, N, out, s.begin, s.end);
}

// y (B, C) = layer_norm of each row of x, with the layer_norm kernel's arithmetic.
template <typename T>
void layer_norm_rows(const T* x, const T* w, const T* b, T* y, int64_t B, int64_t C, double eps) {
  for (int64_t r = 0; r < B; ++r) {
    T mt, rs;
    row_mean_rstd(x + r * C, C, eps, mt, rs);
    normalize_affine_row(x + r * C, w, b, y + r * C, C, mt, rs);
  }
}

// Head h of sequence b: store the new key and value at pos, then y = softmax(q . K^T * scale) @ V
// over positions 0..pos. qkv (B, 3C); caches (B, NH, S, HS); scores (B, NH, S); y (B, C) with
// heads side by side.
template <typename T>
void attend(const T* qkv, T* kc, T* vc, T* scores, T* y, int64_t b, int64_t h, int64_t C, int64_t NH, int64_t S,
            int64_t pos) {
  const int64_t HS = C / NH, row = b * NH + h;  // the cache's (b, h) row
  const T scale = T(1.0 / std::sqrt(double(HS)));
  const T* q = qkv + b * 3 * C + h * HS;
  T* K = kc + row * S * HS;
  T* V = vc + row * S * HS;
  std::copy(q + C, q + C + HS, K + pos * HS);
  std::copy(q + 2 * C, q + 2 * C + HS, V + pos * HS);
  T* s = scores + row * S;
  T m = -std::numeric_limits<T>::infinity();
  for (int64_t t = 0; t <= pos; ++t) {
    const T* kt = K + t * HS;
    T d = 0;
#pragma omp simd reduction(+ : d)
    for (int64_t e = 0; e < HS; ++e) d += q[e] * kt[e];
    s[t] = d * scale;
    m = std::max(m, s[t]);
  }
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t t = 0; t <= pos; ++t) {
    s[t] = vm::exp(s[t] - m);
    sum += s[t];
  }
  T* yo = y + b * C + h * HS;
  std::fill(yo, yo + HS, T(0));
  for (int64_t t = 0; t <= pos; ++t) {
    const T p = s[t];
    const T* vt = V + t * HS;
#pragma omp simd
    for (int64_t e = 0; e < HS; ++e) yo[e] += p * vt[e];
  }
  const T inv = T(1) / sum;
#pragma omp simd
  for (int64_t e = 0; e < HS; ++e) yo[e] *= inv;
}

// Threads the decode kernels use: as many as asked for, but no more than `work` has layer_norm
// slots for (kernels/decode.h).
int decode_threads(const Tensor& work, int64_t fixed, int64_t slot) {
  const int64_t slots = (work.numel() - fixed) / slot;
  return int(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), slots)));
}

// A block in four phases separated by barriers (a barrier costs far more than the few thousand
// flops it would save to share the layer_norms, so every thread normalizes x itself):
//   1. ln_1(x); for the thread's heads, their q, k, v rows of c_attn and their attention
//   2. x += attn.c_proj(y), output features split
//   3. ln_2(x); hid = gelu(c_fc(.)), output features split
//   4. x += mlp.c_proj(hid), output features split
template <typename T, typename TW>
void block_forward(const Tensor& x, const DecodeBlockWeights& w, const Tensor& k_cache, const Tensor& v_cache,
                   int64_t pos, int64_t NH, double eps, const Tensor& work) {
  const int64_t B = x.size(0), C = x.size(1), S = k_cache.size(2), HS = C / NH;
  const int64_t fixed = decode_work_numel(B, C, NH, S, 0);
  const int nt = decode_threads(work, fixed, B * C);
  T* X = x.data<T>();
  T* qkv = work.data<T>();       // (B, 3C)
  T* y = qkv + 3 * B * C;        // (B, C)
  T* hid = y + B * C;            // (B, 4C)
  T* scores = hid + 4 * B * C;   // (B, NH, S)
  T* ln_slots = work.data<T>() + fixed;  // (threads, B, C)
  const T *ln1w = w.ln1_w.data<T>(), *ln1b = w.ln1_b.data<T>(), *ab = w.attn_b.data<T>(),
          *pb = w.attn_proj_b.data<T>(), *ln2w = w.ln2_w.data<T>(), *ln2b = w.ln2_b.data<T>(),
          *fb = w.fc_b.data<T>(), *mb = w.mlp_proj_b.data<T>();
  const TW *aw = w.attn_w.data<TW>(), *pw = w.attn_proj_w.data<TW>(), *fw = w.fc_w.data<TW>(),
           *mw = w.mlp_proj_w.data<TW>();
  T *K = k_cache.data<T>(), *V = v_cache.data<T>();
#pragma omp parallel num_threads(nt)
  {
    T* ln = ln_slots + omp_get_thread_num() * B * C;
    layer_norm_rows(X, ln1w, ln1b, ln, B, C, eps);
    const Share heads = my_share(NH);
    for (int64_t h = heads.begin; h < heads.end; ++h)
      for (int64_t part = 0; part < 3; ++part)  // q, k, v rows of head h
        gemv_rows<T, Epilogue::Store>(ln, B, C, aw, ab, 3 * C, qkv, part * C + h * HS, part * C + (h + 1) * HS);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = heads.begin; h < heads.end; ++h) attend(qkv, K, V, scores, y, b, h, C, NH, S, pos);
#pragma omp barrier
    gemv_share<T, Epilogue::AddTo>(y, B, C, pw, pb, C, X);
#pragma omp barrier
    layer_norm_rows(X, ln2w, ln2b, ln, B, C, eps);
    gemv_share<T, Epilogue::GeluTanh>(ln, B, C, fw, fb, 4 * C, hid);
#pragma omp barrier
    gemv_share<T, Epilogue::AddTo>(hid, B, 4 * C, mw, mb, C, X);
  }
}

void block(const Tensor& x, const DecodeBlockWeights& w, const Tensor& k_cache, const Tensor& v_cache, int64_t pos,
           int64_t n_head, double eps, const Tensor& work) {
  if (w.attn_w.dtype() == DType::BFloat16)  // float32 x (ops/decode.cpp)
    return block_forward<float, bf16>(x, w, k_cache, v_cache, pos, n_head, eps, work);
  dispatch_float(x.dtype(), "decode_block_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    block_forward<T, T>(x, w, k_cache, v_cache, pos, n_head, eps, work);
  });
}

template <typename T, typename TW>
void logits_forward(const Tensor& out, const Tensor& x, const Tensor& ln_w, const Tensor& ln_b, const Tensor& wte,
                    double eps, const Tensor& work) {
  const int64_t B = x.size(0), C = x.size(1), V = wte.size(0);
  const T *X = x.data<T>(), *lw = ln_w.data<T>(), *lb = ln_b.data<T>();
  const TW* W = wte.data<TW>();
  T* o = out.data<T>();
#pragma omp parallel num_threads(decode_threads(work, 0, B * C))
  {
    T* ln = work.data<T>() + omp_get_thread_num() * B * C;  // each thread's own ln_f(x)
    layer_norm_rows(X, lw, lb, ln, B, C, eps);
    gemv_share<T, Epilogue::Store>(ln, B, C, W, static_cast<const T*>(nullptr), V, o);
  }
}

void logits(const Tensor& out, const Tensor& x, const Tensor& ln_w, const Tensor& ln_b, const Tensor& wte,
            double eps, const Tensor& work) {
  if (wte.dtype() == DType::BFloat16)  // float32 x (ops/decode.cpp)
    return logits_forward<float, bf16>(out, x, ln_w, ln_b, wte, eps, work);
  dispatch_float(x.dtype(), "decode_logits_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    logits_forward<T, T>(out, x, ln_w, ln_b, wte, eps, work);
  });
}

void embed(const Tensor& x, const Tensor& ids, const Tensor& wte, const Tensor& wpe, int64_t pos) {
  const int64_t B = x.size(0), C = x.size(1), Vocab = wte.size(0);
  const int64_t* id = ids.data<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    if (id[b] < 0 || id[b] >= Vocab)
      throw IndexError(str("decode_embed_: index ", id[b], " is out of range for a table of ", Vocab, " rows"));
  dispatch_float(x.dtype(), "decode_embed_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* X = x.data<T>();
    const T *E = wte.data<T>(), *P = wpe.data<T>() + pos * C;
    for (int64_t b = 0; b < B; ++b) {
      const T* e = E + id[b] * C;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) X[b * C + j] = e[j] + P[j];
    }
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(decode_embed_kernel, embed);
CGAD_REGISTER_CPU_KERNEL(decode_block_kernel, block);
CGAD_REGISTER_CPU_KERNEL(decode_logits_kernel, logits);

}  // namespace cgad::cpu
