// The AMX bf16 GEMM kernel (gemm_bf16.h), for CPUs with AMX-BF16 (Intel Sapphire Rapids and
// later), where one TDPBF16PS multiplies a 16 x 32 bf16 tile by a 32 x 16 one into 16 x 16 float32
// accumulators: several times what `vdpbf16ps` does on the same core (on such a CPU the AVX-512
// kernel is slower than the float32 sgemm). Compiled by a target pragma, like the AVX-512 kernel,
// and called by gemm_bf16.cpp only after the CPU and the kernel have granted the tile state.
//
// K runs in balanced blocks of at most 4096, each zero-padded to a multiple of 32; per block both
// operands are packed, A into row-major 16-row panels, B into 16-column panels of k pairs (the
// "VNNI" form the tile instruction reads). Each 32 x 32 block of C is four accumulator tiles
// summed over K in order by one thread (between k blocks in a float32 scratch), so the result
// does not depend on the thread count; rows of A are taken in chunks whose packed panels fit in
// L2 while every column block of B passes over them.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>
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

// A rows [i0, i0 + rows) into 16-row panels of kpad bf16 each (row-major; zeros past K and past
// the last row): panel p, row r, k at ap[(p * 16 + r) * kpad + k].
void pack_a(bool ta, const bf16* A, int64_t lda, int64_t i0, int64_t rows, int64_t K, int64_t kpad, bf16* ap) {
  const int64_t prow = round_up(rows, T);
  if (!ta) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(ap + r * kpad, A + (i0 + r) * lda, size_t(K) * sizeof(bf16));
  } else {  // A stored (K, M): element (i, k) at A[k * lda + i]; read along its rows
    for (int64_t k = 0; k < K; ++k) {
      const bf16* src = A + k * lda + i0;
      for (int64_t r = 0; r < rows; ++r) ap[r * kpad + k] = src[r];
    }
  }
  for (int64_t r = 0; r < prow; ++r) std::fill(ap + r * kpad + (r < rows ? K : 0), ap + (r + 1) * kpad, bf16(0.0f));
}

// B columns [j0, j0 + cols) into 16-column panels of kpad / 2 k pairs: panel q, pair p, column c
// at bp[(q * kpad / 2 + p) * 16 + c] = (B(2p, j), B(2p + 1, j)) (zeros past K and the last column).
void pack_b(bool tb, const bf16* B, int64_t ldb, int64_t j0, int64_t cols, int64_t K, int64_t kpad, uint32_t* bp) {
  const uint16_t* b = reinterpret_cast<const uint16_t*>(B);
  const int64_t kp = kpad / 2;
  std::fill(bp, bp + round_up(cols, T) / T * kp * T, 0u);
  // B(k, j) is stored (N, K) when tb, else (K, N): either way read along the stored rows
  if (tb) {  // a k pair of column j is two adjacent elements of stored row j: one 32-bit copy
    for (int64_t j = 0; j < cols; ++j) {
      uint32_t* d = bp + (j / T) * kp * T + j % T;
      const uint16_t* row = b + (j0 + j) * ldb;
      for (int64_t p = 0; p < K / 2; ++p) std::memcpy(d + p * T, row + 2 * p, 4);
      if (K % 2) d[(K / 2) * T] = row[K - 1];
    }
  } else {  // a k pair is the same column of two stored rows
    for (int64_t p = 0; p < (K + 1) / 2; ++p) {
      const uint16_t* r0 = b + 2 * p * ldb + j0;
      const uint16_t* r1 = 2 * p + 1 < K ? r0 + ldb : nullptr;
      uint32_t* d = bp + p * T;
      for (int64_t j = 0; j < cols; ++j)
        d[(j / T) * kp * T + j % T] = uint32_t(r0[j]) | (r1 ? uint32_t(r1[j]) << 16 : 0u);
    }
  }
}

// One 32 x 32 block of C from two A panels and two B panels over one k block (either of the
// second pair may be absent at the edges: the tile then multiplies zeros, whose results are not
// stored). Between k blocks the four accumulator tiles wait in the float32 scratch S (lds floats
// a row); the last k block goes through the epilogue into C.
template <typename TC>
void block(const bf16* a0, const bf16* a1, const uint32_t* b0, const uint32_t* b1, int64_t kpad, bool first, bool last,
           float* S, int64_t lds, int rows, int cols, float alpha, float beta, const bf16* bias, TC* C, int64_t ldc) {
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
  const int64_t astride = kpad * int64_t(sizeof(bf16));
  for (int64_t k = 0; k < kpad; k += KT) {
    _tile_loadd(4, a0 + k, astride);
    _tile_loadd(5, a1 + k, astride);
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
    const __mmask16 m = __mmask16(n >= 16 ? 0xffffu : (1u << n) - 1u);
    for (int r = 0; r < rows; ++r)
      epilogue16(C + r * ldc + T * h, _mm512_load_ps(&acc[r][T * h]), m, alpha, beta, bias ? bias + T * h : nullptr);
  }
}

thread_local std::vector<bf16> g_apack;
thread_local std::vector<uint32_t> g_bpack;
thread_local std::vector<float> g_scratch;

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
  const int64_t npanels = round_up(N, T) / T, nblocks = (N + 2 * T - 1) / (2 * T);
  g_bpack.resize(size_t(npanels * kpad / 2 * T + kpad / 2 * T));  // + one zero panel for odd edges
  uint32_t* bp = g_bpack.data();
  const int64_t mc = std::max<int64_t>(2 * T, kAChunkBytes / (kpad * int64_t(sizeof(bf16))) / (2 * T) * (2 * T));
  g_apack.resize(size_t((std::min(mc, round_up(M, 2 * T)) + T) * kpad));
  bf16* ap = g_apack.data();
  const int64_t lds = round_up(N, 2 * T);
  if (nkb > 1) g_scratch.resize(size_t(round_up(M, 2 * T) * lds));
  float* S = g_scratch.data();
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
  {
    TileConfig cfg;
    _tile_loadconfig(&cfg);
    for (int64_t k0 = 0; k0 < K; k0 += kpad) {
      const int64_t kc = std::min(kpad, K - k0), kp = round_up(kc, KT);  // this block, padded
      const bool first = k0 == 0, last = k0 + kc >= K;
      const bf16* Bk = tb ? B + k0 : B + k0 * ldb;
      const bf16* Ak = ta ? A + k0 * lda : A + k0;
      uint32_t* bzero = bp + npanels * kp / 2 * T;
#pragma omp for schedule(static)
      for (int64_t q = 0; q < npanels + 1; ++q) {
        if (q < npanels) pack_b(tb, Bk, ldb, q * T, std::min<int64_t>(T, N - q * T), kc, kp, bp + q * kp / 2 * T);
        else std::fill(bzero, bzero + kp / 2 * T, 0u);
      }
      for (int64_t i0 = 0; i0 < M; i0 += mc) {
        const int64_t rows = std::min(mc, M - i0), rpanels = round_up(rows, T) / T,
                      mblocks = (rows + 2 * T - 1) / (2 * T);
#pragma omp for schedule(static)
        for (int64_t p = 0; p < rpanels + 1; ++p) {  // the extra panel: zeros for an odd last block
          bf16* d = ap + p * T * kp;
          if (p < rpanels) pack_a(ta, Ak, lda, i0 + p * T, std::min<int64_t>(T, rows - p * T), kc, kp, d);
          else std::fill(d, d + T * kp, bf16(0.0f));
        }
#pragma omp for schedule(static) collapse(2)
        for (int64_t jb = 0; jb < nblocks; ++jb)
          for (int64_t ib = 0; ib < mblocks; ++ib) {
            const int64_t i = ib * 2 * T, j = jb * 2 * T;
            const bf16* a0 = ap + (2 * ib) * T * kp;
            const bf16* a1 = 2 * ib + 1 < rpanels ? a0 + T * kp : ap + rpanels * T * kp;
            const uint32_t* b0 = bp + (2 * jb) * kp / 2 * T;
            const uint32_t* b1 = 2 * jb + 1 < npanels ? b0 + kp / 2 * T : bzero;
            block<TC>(a0, a1, b0, b1, kp, first, last, S + (i0 + i) * lds + j, lds,
                      int(std::min<int64_t>(2 * T, rows - i)), int(std::min<int64_t>(2 * T, N - j)), alpha, beta,
                      bias ? bias + j : nullptr, C + (i0 + i) * ldc + j, ldc);
          }
      }
    }
    _tile_release();
  }
}

template void gemm_bf16_amx<float>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                   int64_t, float, float*, int64_t, const bf16*, int);
template void gemm_bf16_amx<bf16>(bool, bool, int64_t, int64_t, int64_t, float, const bf16*, int64_t, const bf16*,
                                  int64_t, float, bf16*, int64_t, const bf16*, int);

}  // namespace cgad::cpu::detail

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#pragma GCC pop_options
#elif defined(__clang__)
#pragma clang attribute pop
#endif
