// The AVX512_BF16 GEMM kernel (gemm_bf16.h), compiled for that instruction set by a target
// pragma so that a portable build (CGAD_NATIVE=OFF) has it too; gemm_bf16.cpp calls it only
// after checking the CPU. Headers come before the pragma, and everything compiled under it has
// internal linkage but the two entry points, so no AVX-512 code can stand in for a shared
// inline function elsewhere.
//
// Goto/BLIS blocking: K in blocks of up to KC, then MC rows of A and up to NC columns of B (as
// many as keep the packed B block in L2), each block
// packed into micro-panels of bf16 pairs, in the form `vdpbf16ps` reads: for a k pair p, an A
// panel holds MR 32-bit pairs (A(i, 2p), A(i, 2p + 1)) and a B panel NR pairs (B(2p, j),
// B(2p + 1, j)). One instruction then does 16 columns x 2 k of one row: acc[j] += a0*b0[j] +
// a1*b1[j]. The MR x NR tile of float32 accumulators (24 zmm) stays in registers over the whole
// k block. Packing pads with zeros (odd K, edge rows and columns), so every tile runs full and
// only the stores are masked. Each tile of C is summed by one thread in k order, so the result
// does not depend on the thread count. With K > KC, partial sums wait in a float32 scratch.
#include <immintrin.h>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/gemm_bf16.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
// GCC 12's intrinsics make their "undefined" vectors as `__m512i __Y = __Y;`, which
// -Wmaybe-uninitialized reports wherever they inline: a false alarm, silenced for this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#elif defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))), apply_to = function)
#endif

#include "backends/cpu/bf16_avx512.h"

namespace cgad::cpu::detail {

namespace {

constexpr int MR = 12;  // rows of a tile: 12 x 2 accumulators + 2 B vectors + 1 broadcast <= 32 zmm
constexpr int NR = 32;  // columns of a tile: two zmm of float32
constexpr int64_t KC = 4096;  // a k block: its B micro-panel (KC x NR bf16, 256 KiB) stays in L2
constexpr int64_t MC = 170 * MR;
constexpr int64_t NC = 64 * NR;
// The packed B block is re-read by every row panel of A, so it must stay in L2 (1 MiB a core on
// Zen 4, half of it left to A and C): its columns shrink as k grows.
constexpr int64_t kBBlockBytes = 512 * 1024;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

uint32_t pair(uint16_t lo, uint16_t hi) { return uint32_t(lo) | (uint32_t(hi) << 16); }

// A (not transposed) rows [i0, i0 + rows) x k [k0, k0 + kc) into panels of MR rows (rows past the
// end are 0): odd K and the last, partial panel.
void pack_a(const bf16* A, int64_t lda, int64_t i0, int64_t rows, int64_t k0, int64_t kc, uint32_t* dst,
            int64_t panel) {
  const int64_t kp = (kc + 1) / 2;
  uint32_t* d = dst + panel * kp * MR;
  const int64_t r0 = panel * MR, nr = std::min<int64_t>(MR, rows - r0);
  const uint16_t* a = reinterpret_cast<const uint16_t*>(A);
  for (int64_t r = 0; r < MR; ++r) {
    if (r >= nr) {
      for (int64_t p = 0; p < kp; ++p) d[p * MR + r] = 0;
      continue;
    }
    const uint16_t* row = a + (i0 + r0 + r) * lda + k0;
    for (int64_t p = 0; p < kc / 2; ++p) d[p * MR + r] = pair(row[2 * p], row[2 * p + 1]);
    if (kc % 2) d[(kp - 1) * MR + r] = pair(row[kc - 1], 0);
  }
}

// pack_a for a transposed A (grad_W = g^T x): A's stored rows run along i, so each k pair of a
// panel is two rows interleaved, as pack_b does for B.
void pack_a_transposed(const bf16* A, int64_t lda, int64_t i0, int64_t rows, int64_t k0, int64_t kc, uint32_t* dst,
                       int64_t panel) {
  const int64_t kp = (kc + 1) / 2;
  uint32_t* d = dst + panel * kp * MR;
  const int64_t r0 = panel * MR, nr = std::min<int64_t>(MR, rows - r0);
  const uint16_t* col = reinterpret_cast<const uint16_t*>(A) + k0 * lda + i0 + r0;
  for (int64_t p = 0; p < kp; ++p) {
    const uint16_t* a0 = col + 2 * p * lda;
    _mm512_mask_storeu_epi32(d + p * MR, first_lanes(MR),
                             interleave_rows(a0, 2 * p + 1 < kc ? a0 + lda : nullptr, nr));
  }
}

// B k [k0, k0 + kc) x columns [j0, j0 + cols) into panels of NR columns (columns past the end are 0).
void pack_b(bool tb, const bf16* B, int64_t ldb, int64_t j0, int64_t cols, int64_t k0, int64_t kc, uint32_t* dst,
            int64_t panel) {
  const int64_t kp = (kc + 1) / 2;
  uint32_t* d = dst + panel * kp * NR;
  const int64_t c0 = panel * NR, nc = std::min<int64_t>(NR, cols - c0);
  const uint16_t* b = reinterpret_cast<const uint16_t*>(B);
  if (!tb) {  // rows of B are contiguous in j: interleave two rows
    for (int64_t p = 0; p < kp; ++p) {
      const uint16_t* r0 = b + (k0 + 2 * p) * ldb + j0 + c0;
      const uint16_t* r1 = 2 * p + 1 < kc ? r0 + ldb : nullptr;
      for (int h = 0; h < NR / 16; ++h) {
        const int64_t n = std::max<int64_t>(nc - 16 * h, 0);
        _mm512_storeu_si512(d + p * NR + 16 * h, n ? interleave_rows(r0 + 16 * h, r1 ? r1 + 16 * h : nullptr, n)
                                                   : _mm512_setzero_si512());
      }
    }
  } else {  // B(k, j) = Bs[j][k]: each pair is two adjacent elements of a stored row, 16 rows gathered
    const uint16_t* rows = b + (j0 + c0) * ldb + k0;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(int(ldb)));
    for (int h = 0; h < NR / 16; ++h) {
      const int64_t n = std::clamp<int64_t>(nc - 16 * h, 0, 16);
      const __mmask16 m = first_lanes(n);
      const uint16_t* r16 = rows + 16 * h * ldb;
      for (int64_t p = 0; p < kc / 2; ++p)  // scale 2: idx counts bf16 elements
        _mm512_storeu_si512(d + p * NR + 16 * h, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx,
                                                                             r16 + 2 * p, 2));
      if (kc % 2)  // the last pair has one element: its neighbour is past the k block
        for (int64_t j = 0; j < 16; ++j) d[(kp - 1) * NR + 16 * h + j] = j < n ? pair(r16[j * ldb + kc - 1], 0) : 0;
    }
  }
}

struct Epilogue {
  float alpha, beta;
  const bf16* bias;  // global column j, or null
};

// One MR x NR tile over kp k pairs: acc = (first ? 0 : S) + A panel @ B panel; then either back
// into the scratch S (more k blocks to come) or through the epilogue into C (rows x cols of it).
// The A pair (row r, k pair p) starts at ap[p * ps + r * rs], in bf16 elements: a packed panel
// (ps = 2 MR, rs = 2) or A's own rows when they hold whole pairs (ps = 2, rs = lda), which
// saves packing A. A's rows need not be 4-byte aligned, hence the memcpy (one load).
template <typename TC>
void tile(int64_t kp, const uint16_t* ap, int64_t ps, int64_t rs, const uint32_t* bp, bool first, bool last,
          float* S, int64_t lds, TC* C, int64_t ldc, int rows, int cols, const Epilogue& ep, int64_t j) {
  __m512 c[MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    c[r][0] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(S + r * lds);
    c[r][1] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(S + r * lds + 16);
  }
  for (int64_t p = 0; p < kp; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp + p * NR);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + p * NR + 16);
    const uint16_t* a = ap + p * ps;
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      int pr;
      std::memcpy(&pr, a + r * rs, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pr);
      c[r][0] = _mm512_dpbf16_ps(c[r][0], av, b0);
      c[r][1] = _mm512_dpbf16_ps(c[r][1], av, b1);
    }
  }
  if (!last) {
    for (int r = 0; r < MR; ++r) {
      _mm512_storeu_ps(S + r * lds, c[r][0]);
      _mm512_storeu_ps(S + r * lds + 16, c[r][1]);
    }
    return;
  }
  for (int h = 0; h < 2; ++h) {
    const int n = std::min(16, cols - 16 * h);
    if (n <= 0) break;
    const __mmask16 m = first_lanes(n);
    for (int r = 0; r < rows; ++r)
      epilogue16(C + r * ldc + 16 * h, c[r][h], m, ep.alpha, ep.beta, ep.bias ? ep.bias + j + 16 * h : nullptr);
  }
}

// Reused between calls, so a training step does not fault in fresh pages for every GEMM.
thread_local AlignedBuffer<uint32_t> g_apack, g_bpack;
thread_local AlignedBuffer<float> g_scratch;

}  // namespace

template <typename TC>
void gemm_bf16_avx512(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                      const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias, int nthreads) {
  const int64_t nkb = (K + KC - 1) / KC;
  const int64_t kc_max = round_up((K + nkb - 1) / nkb, 2);  // balanced, even k blocks
  const int64_t nc_block = std::clamp<int64_t>(kBBlockBytes / (2 * kc_max) / NR * NR, NR, NC);
  const int64_t mc_max = std::min(MC, round_up(M, MR)), nc_max = std::min(nc_block, round_up(N, NR));
  uint32_t* ap = g_apack.get(size_t(mc_max * kc_max / 2));
  uint32_t* bp = g_bpack.get(size_t(nc_max * kc_max / 2));
  const int64_t lds = round_up(N, NR);
  float* S = nkb > 1 ? g_scratch.get(size_t(round_up(M, MR) * lds)) : nullptr;
  const Epilogue ep{alpha, beta, bias};
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
  for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
    const int64_t kc = std::min(kc_max, K - k0), kp = (kc + 1) / 2;
    const bool first = k0 == 0, last = k0 + kc >= K;
    for (int64_t i0 = 0; i0 < M; i0 += MC) {
      const int64_t mc = std::min(MC, M - i0), mpanels = (mc + MR - 1) / MR;
      // A row-major with an even K and leading dim holds whole k pairs: full panels read it in
      // place, and only a last, partial panel is packed (its missing rows as zeros).
      const bool direct = !ta && K % 2 == 0;
#pragma omp for schedule(static)
      for (int64_t ip = 0; ip < mpanels; ++ip)
        if (ta) pack_a_transposed(A, lda, i0, mc, k0, kc, ap, ip);
        else if (!direct || (ip + 1) * MR > mc) pack_a(A, lda, i0, mc, k0, kc, ap, ip);
      for (int64_t j0 = 0; j0 < N; j0 += nc_block) {
        const int64_t nc = std::min(nc_block, N - j0), npanels = (nc + NR - 1) / NR;
#pragma omp for schedule(static)
        for (int64_t jp = 0; jp < npanels; ++jp) pack_b(tb, B, ldb, j0, nc, k0, kc, bp, jp);
#pragma omp for schedule(static) collapse(2)
        for (int64_t ip = 0; ip < mpanels; ++ip)
          for (int64_t jp = 0; jp < npanels; ++jp) {
            const int64_t i = i0 + ip * MR, j = j0 + jp * NR;
            const bool in_place = direct && (ip + 1) * MR <= mc;
            const uint16_t* a = in_place ? reinterpret_cast<const uint16_t*>(A + i * lda + k0)
                                         : reinterpret_cast<const uint16_t*>(ap + ip * kp * MR);
            tile<TC>(kp, a, in_place ? 2 : 2 * MR, in_place ? lda : 2, bp + jp * kp * NR, first, last,
                     nkb > 1 ? S + i * lds + j : nullptr, lds, C + i * ldc + j, ldc,
                     int(std::min<int64_t>(MR, M - i)), int(std::min<int64_t>(NR, N - j)), ep, j);
          }
      }
    }
  }
}

template void gemm_bf16_avx512<float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t,
                                      const bf16*, int64_t, float, float*, int64_t, const bf16*, int);
template void gemm_bf16_avx512<bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t,
                                     const bf16*, int64_t, float, bf16*, int64_t, const bf16*, int);

}  // namespace cgad::cpu::detail

#include "backends/cpu/target_end.h"  // closes the target region opened above
