// The AMX bf16 GEMM kernel (gemm_bf16.h), for CPUs with AMX-BF16 (Intel Sapphire Rapids and
// later), where one TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 one into 16 x 16 float32
// accumulators: several times what `vdpbf16ps` does on the same core (on such a CPU the AVX-512
// kernel is slower than the float32 sgemm). Compiled by a target pragma, like the AVX-512 kernel,
// and called by gemm_bf16.cpp only after the CPU and the kernel have granted the tile state.
//
// K runs in balanced blocks of at most 4096, each zero-padded to a multiple of 32. The threads
// split C into one rectangle of 32 x 32 blocks each and pack what their rectangle reads
// themselves (a panel packed by the other core is read from that core's cache: several times
// slower). Per k block, B becomes 16-column panels of k pairs (the "VNNI" form the tile
// instruction reads; a B stored (K, N) streamed along its rows, a transposed B by 16 x 16
// transposes), and A 16-row row-major panels, except that a row-major A with whole tiles of k is
// read in place. Each 32 x 32 block of C is four accumulator tiles summed over K in order by one
// thread (between k blocks in a float32 scratch), so the result does not depend on the thread
// count; rows of A are taken in chunks whose panels fit in L2 while every column block of B
// passes over them. Pack buffers are 64-byte aligned, or every tile row would straddle two lines.
#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/gemm_bf16.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#elif defined(__clang__)
#pragma clang attribute push(__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16"))), \
                             apply_to = function)
#endif

#include "backends/cpu/bf16_avx512.h"

namespace cgad::cpu::detail {

namespace {

constexpr int64_t T = 16;            // rows and columns of an accumulator tile
constexpr int64_t KT = 32;           // k of one tile product (16 pairs)
constexpr int64_t KC = 4096;         // k of a block: 16 columns of B over it are 128 KiB
constexpr int64_t kAChunkBytes = 1 << 20;  // packed A rows re-read by every column block: in L2

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The tile configuration (palette 1): every tile 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
  TileConfig() {
    for (int t = 0; t < 8; ++t) {
      colsb[t] = 64;
      rows[t] = 16;
    }
  }
};

// Software prefetch distance of the packer that walks down a stored column strip (a transposed
// A): the rows are far apart, which the hardware prefetchers do not follow.
constexpr int64_t kPrefetchRows = 16;

// A rows [i0, i0 + rows) (at most 32) into two consecutive 16-row panels of kpad bf16 a row
// (row-major; zeros past K and past the last row): row r, k at ap[r * kpad + k].
void pack_a(bool ta, const bf16* A, int64_t lda, int64_t i0, int64_t rows, int64_t K, int64_t kpad, bf16* ap) {
  int64_t k = 0;
  if (!ta) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(ap + r * kpad, A + (i0 + r) * lda, size_t(K) * sizeof(bf16));
    k = K;
  } else {  // A stored (K, M): element (i, k) at A[k * lda + i]. 32 k at a time: two stored rows
    // interleaved give 16 k pairs of a panel's 16 rows, whose transpose is the panel's rows; both
    // panels from the same 64-byte lines of the stored rows.
    const uint16_t* a = reinterpret_cast<const uint16_t*>(A) + i0;
    for (; k + KT <= K; k += KT) {
      for (int p = 0; p < KT && k + KT + kPrefetchRows + p < K; ++p)
        _mm_prefetch(reinterpret_cast<const char*>(a + (k + KT + kPrefetchRows + p) * lda), _MM_HINT_T0);
      for (int64_t h = 0; h < 2 && h * T < rows; ++h) {
        const int64_t n = std::min<int64_t>(T, rows - h * T);
        __m512i v[16];
        for (int p = 0; p < 16; ++p)
          v[p] = interleave_rows(a + (k + 2 * p) * lda + h * T, a + (k + 2 * p + 1) * lda + h * T, n);
        transpose16x16_epi32(v);
        for (int64_t r = 0; r < n; ++r) _mm512_storeu_si512(ap + (h * T + r) * kpad + k, v[r]);
      }
    }
    for (int64_t kk = k; kk < K; ++kk)
      for (int64_t r = 0; r < rows; ++r) ap[r * kpad + kk] = A[kk * lda + i0 + r];
    k = K;
  }
  const int64_t prow = rows > T ? 2 * T : T;
  for (int64_t r = 0; r < prow; ++r) std::fill(ap + r * kpad + (r < rows ? k : 0), ap + (r + 1) * kpad, bf16(0.0f));
}

// B(k, j) stored (N, K) (a transposed B), columns [j0, j0 + cols) (at most 32) into two
// consecutive 16-column panels of kpad / 2 k pairs (the second only when cols > 16): pair p,
// column c of a panel at bp[p * 16 + c] = (B(2p, j), B(2p + 1, j)) (zeros past K and the last
// column).
void pack_b_transposed(const bf16* B, int64_t ldb, int64_t j0, int64_t cols, int64_t K, int64_t kpad, uint32_t* bp) {
  const uint16_t* b = reinterpret_cast<const uint16_t*>(B);
  const int64_t kp = kpad / 2;
  for (int64_t h = 0; h < 2 && h * T < cols; ++h) {
    // 16 pairs of a stored row are one 64-byte load; 16 rows transposed give 16 pair rows
    const int64_t n = std::min<int64_t>(T, cols - h * T);
    const uint16_t* rows = b + (j0 + h * T) * ldb;
    uint32_t* d = bp + h * kp * T;
    int64_t p = 0;
    for (; 2 * p + KT <= K; p += 16) {
      __m512i v[16];
      for (int c = 0; c < 16; ++c) v[c] = c < n ? _mm512_loadu_si512(rows + c * ldb + 2 * p) : _mm512_setzero_si512();
      transpose16x16_epi32(v);
      for (int q = 0; q < 16; ++q) _mm512_storeu_si512(d + (p + q) * T, v[q]);
    }
    std::fill(d + p * T, d + kp * T, 0u);
    for (int64_t j = 0; j < n; ++j) {
      const uint16_t* row = rows + j * ldb;
      for (int64_t pp = p; pp < K / 2; ++pp) std::memcpy(d + pp * T + j, row + 2 * pp, 4);
      if (K % 2) d[(K / 2) * T + j] = row[K - 1];
    }
  }
}

// B stored (K, N), columns [j0, j0 + cols) into their ceil(cols / 16) consecutive panels (laid out as
// pack_b_transposed's): a k pair is the same columns of two stored rows, interleaved. Rows are
// read along, all panels at once, so the reads stream (walking one panel's column strip down the
// rows left the hardware prefetchers behind: the grad_W GEMMs read activations from memory).
void pack_b_rows(const bf16* B, int64_t ldb, int64_t j0, int64_t cols, int64_t K, int64_t kpad, uint32_t* bp) {
  const uint16_t* b = reinterpret_cast<const uint16_t*>(B);
  const int64_t kp = kpad / 2, npanels = (cols + T - 1) / T;
  int64_t p = 0;
  for (; 2 * p < K; ++p) {
    const uint16_t* r0 = b + 2 * p * ldb + j0;
    const uint16_t* r1 = 2 * p + 1 < K ? r0 + ldb : nullptr;
    for (int64_t q = 0; q < npanels; ++q)
      _mm512_storeu_si512(bp + (q * kp + p) * T,
                          interleave_rows(r0 + q * T, r1 ? r1 + q * T : nullptr, std::min<int64_t>(T, cols - q * T)));
  }
  for (int64_t q = 0; q < npanels; ++q) std::fill(bp + (q * kp + p) * T, bp + (q + 1) * kp * T, 0u);
}

// One 32 x 32 block of C from two A panels (packed, or 16 rows of A read in place: the panel's
// row stride in bytes comes with it) and two B panels over one k block (either of the
// second pair may be absent at the edges: the tile then multiplies zeros, whose results are not
// stored). Between k blocks the four accumulator tiles wait in the float32 scratch S (lds floats
// a row); the last k block goes through the epilogue into C.
template <typename TC>
void block(const bf16* a0, int64_t astride0, const bf16* a1, int64_t astride1, const uint32_t* b0, const uint32_t* b1,
           int64_t kpad, bool first, bool last, float* S, int64_t lds, int rows, int cols, float alpha, float beta,
           const bf16* bias, TC* C, int64_t ldc) {
  const size_t sstride = size_t(lds) * sizeof(float);
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  } else {
    _tile_loadd(0, S, sstride);
    _tile_loadd(1, S + T, sstride);
    _tile_loadd(2, S + T * lds, sstride);
    _tile_loadd(3, S + T * lds + T, sstride);
  }
  for (int64_t k = 0; k < kpad; k += KT) {
    _tile_loadd(4, a0 + k, astride0);
    _tile_loadd(5, a1 + k, astride1);
    _tile_loadd(6, b0 + (k / 2) * T, 64);
    _tile_loadd(7, b1 + (k / 2) * T, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  if (!last) {
    _tile_stored(0, S, sstride);
    _tile_stored(1, S + T, sstride);
    _tile_stored(2, S + T * lds, sstride);
    _tile_stored(3, S + T * lds + T, sstride);
    return;
  }
  alignas(64) float acc[2 * T][2 * T];
  _tile_stored(0, &acc[0][0], 2 * T * sizeof(float));
  _tile_stored(1, &acc[0][T], 2 * T * sizeof(float));
  _tile_stored(2, &acc[T][0], 2 * T * sizeof(float));
  _tile_stored(3, &acc[T][T], 2 * T * sizeof(float));
  for (int h = 0; h < 2; ++h) {
    const int n = std::min<int>(int(T), cols - int(T) * h);
    if (n <= 0) break;
    const __mmask16 m = first_lanes(n);
    for (int r = 0; r < rows; ++r)
      epilogue16(C + r * ldc + T * h, _mm512_load_ps(&acc[r][T * h]), m, alpha, beta, bias ? bias + T * h : nullptr);
  }
}

// Reused between calls, so a training step does not fault in fresh pages for every GEMM.
thread_local AlignedBuffer<bf16> g_apack;
thread_local AlignedBuffer<uint32_t> g_bpack;
thread_local AlignedBuffer<float> g_scratch;

// The threads' split of the (mblocks x nblocks) grid of 32 x 32 blocks of C into tm x tn
// rectangles: the most even split (the slowest thread's blocks), then the one reading the fewest
// operand rows and columns (each thread packs the A rows and B columns of its own rectangle).
struct Split {
  int tm = 1, tn = 1;
};
Split split_grid(int nthreads, int64_t mblocks, int64_t nblocks) {
  Split best;
  int64_t best_work = -1, best_reads = 0;
  for (int tm = 1; tm <= nthreads; ++tm) {
    if (nthreads % tm) continue;
    const int tn = nthreads / tm;
    if (tm > mblocks || tn > nblocks) continue;
    const int64_t mr = (mblocks + tm - 1) / tm, nr = (nblocks + tn - 1) / tn;
    const int64_t work = mr * nr, reads = mr + nr;
    if (best_work < 0 || work < best_work || (work == best_work && reads < best_reads)) {
      best = {tm, tn};
      best_work = work;
      best_reads = reads;
    }
  }
  return best;  // 1 x 1 when the grid has fewer blocks than any split needs
}

}  // namespace

bool amx_bf16_usable() {
  // The kernel asks once for the tile state (Linux keeps it off until a process requests it).
  static const bool ok = [] {
    if (!__builtin_cpu_supports("amx-bf16") || !__builtin_cpu_supports("amx-tile")) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

template <typename TC>
void gemm_bf16_amx(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const bf16* A, int64_t lda,
                   const bf16* B, int64_t ldb, float beta, TC* C, int64_t ldc, const bf16* bias, int nthreads) {
  // K in balanced blocks of at most KC, so that a B panel's k block stays in L2 while the rows of
  // A pass over it (a 50,257-long K would stream all of B from memory for every row chunk).
  const int64_t nkb = (K + KC - 1) / KC, kpad = round_up((K + nkb - 1) / nkb, KT);
  const int64_t mblocks = (M + 2 * T - 1) / (2 * T), nblocks = (N + 2 * T - 1) / (2 * T);
  // Rows of A per chunk: their packed panels fit in L2 while every column block passes over them.
  const int64_t mc = std::max<int64_t>(2 * T, kAChunkBytes / (kpad * int64_t(sizeof(bf16))) / (2 * T) * (2 * T));
  const int64_t lds = round_up(N, 2 * T);
  float* S = nkb > 1 ? g_scratch.get(size_t(round_up(M, 2 * T) * lds)) : nullptr;
  const Split sp = split_grid(nthreads, mblocks, nblocks);
  // Each thread owns one rectangle of C and packs what it reads itself: a panel packed by the
  // other core would be read from that core's cache (measured: 4-5x slower than the local L2).
#pragma omp parallel num_threads(sp.tm * sp.tn) if (sp.tm * sp.tn > 1)
  {
    const int tid = omp_get_thread_num(), ti = tid / sp.tn, tj = tid % sp.tn;
    const int64_t mr = (mblocks + sp.tm - 1) / sp.tm, nr = (nblocks + sp.tn - 1) / sp.tn;
    const int64_t mb0 = ti * mr, mb1 = std::min(mblocks, mb0 + mr), nb0 = tj * nr, nb1 = std::min(nblocks, nb0 + nr);
    const int64_t row0 = mb0 * 2 * T, row1 = std::min(M, mb1 * 2 * T);
    const int64_t col0 = nb0 * 2 * T, col1 = std::min(N, nb1 * 2 * T), tpanels = (col1 - col0 + T - 1) / T;
    if (row0 < row1 && col0 < col1) {
      TileConfig cfg;
      _tile_loadconfig(&cfg);
      // This thread's B columns over a k block (+ one zero panel for an odd edge), packed during
      // its first row chunk and read again by the others; its A panels of one chunk (+ a zero panel).
      uint32_t* bp = g_bpack.get(size_t((tpanels + 1) * kpad / 2 * T));
      bf16* ap = g_apack.get(size_t((std::min(mc, row1 - row0) + 2 * T) * kpad));
      for (int64_t k0 = 0; k0 < K; k0 += kpad) {
        const int64_t kc = std::min(kpad, K - k0), kp = round_up(kc, KT);  // this block, padded
        const bool first = k0 == 0, last = k0 + kc >= K;
        const bf16* Bk = tb ? B + k0 : B + k0 * ldb;
        const bf16* Ak = ta ? A + k0 * lda : A + k0;
        const int64_t pstride = kp / 2 * T;  // uint32 of one packed B panel
        uint32_t* bzero = bp + tpanels * pstride;
        std::fill(bzero, bzero + pstride, 0u);
        // A row-major with whole tiles of k is read in place (16 rows at its own stride); only a
        // last, partial panel is packed
        const bool direct = !ta && kc == kp;
        for (int64_t i0 = row0; i0 < row1; i0 += mc) {
          const int64_t rows = std::min(mc, row1 - i0), rpanels = (rows + T - 1) / T;
          bf16* azero = ap + rpanels * T * kp;
          std::fill(azero, azero + T * kp, bf16(0.0f));
          if (direct) {  // only a last, partial panel
            if (rows % T) pack_a(ta, Ak, lda, i0 + rows / T * T, rows % T, kc, kp, ap + rows / T * T * kp);
          } else {
            for (int64_t p = 0; p < rpanels; p += 2)
              pack_a(ta, Ak, lda, i0 + p * T, std::min<int64_t>(2 * T, rows - p * T), kc, kp, ap + p * T * kp);
          }
          if (i0 == row0 && !tb) pack_b_rows(Bk, ldb, col0, col1 - col0, kc, kp, bp);
          for (int64_t jb = nb0; jb < nb1; ++jb) {
            const int64_t q = 2 * (jb - nb0), j = jb * 2 * T;
            if (i0 == row0 && tb) pack_b_transposed(Bk, ldb, j, std::min<int64_t>(2 * T, N - j), kc, kp, bp + q * pstride);
            const uint32_t* b0 = bp + q * pstride;
            const uint32_t* b1 = j + T < N ? b0 + pstride : bzero;
            for (int64_t i = i0; i < i0 + rows; i += 2 * T) {
              const bf16* a[2];
              int64_t as[2];
              for (int h = 0; h < 2; ++h) {
                const int64_t r = i + h * T, p = (r - i0) / T;
                if (r >= M) a[h] = azero, as[h] = kp * int64_t(sizeof(bf16));
                else if (direct && r + T <= M) a[h] = Ak + r * lda, as[h] = lda * int64_t(sizeof(bf16));
                else a[h] = ap + p * T * kp, as[h] = kp * int64_t(sizeof(bf16));
              }
              block<TC>(a[0], as[0], a[1], as[1], b0, b1, kp, first, last, S ? S + i * lds + j : nullptr, lds,
                        int(std::min<int64_t>(2 * T, M - i)), int(std::min<int64_t>(2 * T, N - j)), alpha, beta,
                        bias ? bias + j : nullptr, C + i * ldc + j, ldc);
            }
          }
        }
      }
      _tile_release();
    }
  }
}

template void gemm_bf16_amx<float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                   int64_t, float, float*, int64_t, const bf16*, int);
template void gemm_bf16_amx<bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                  int64_t, float, bf16*, int64_t, const bf16*, int);

}  // namespace cgad::cpu::detail

#include "backends/cpu/target_end.h"  // closes the target region opened above
