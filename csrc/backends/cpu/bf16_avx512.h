// AVX-512 loads and stores of 16 bf16 values as float32, shared by the bf16 GEMM kernels. Include
// it after the file's AVX-512 target pragma (and after <immintrin.h>): the functions have internal
// linkage, so each kernel file gets its own copy compiled for its target and none can stand in
// for another's.
#pragma once

namespace cgad::cpu::detail {
namespace {

// Up to 16 bf16 values (mask m) widened to float32 (exact: a shift into the upper half).
inline __m512 load_bf16(const bf16* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

// The mask of the first n of 16 lanes (all 16 for n >= 16): a row's or a tail's real elements.
inline __mmask16 first_lanes(int64_t n) { return __mmask16(n >= 16 ? 0xffffu : (1u << n) - 1u); }

// Two rows of bf16 as 16 k pairs (r0's element in the low half, r1's in the high; r1 null: zeros):
// the 32-bit form `vdpbf16ps` and the AMX tiles read. nc columns are real, the rest zeros.
inline __m512i interleave_rows(const uint16_t* r0, const uint16_t* r1, int64_t nc) {
  const __mmask16 m = first_lanes(nc);
  const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r0));
  if (!r1) return lo;
  return _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r1)), 16));
}

// One round of transpose16x16_epi32: swaps the off-diagonal b x b blocks of every 2b x 2b block.
template <int b>
inline void transpose_round(__m512i r[16]) {
  // row i takes its own column c where c & b is clear, else row i + b's column c - b; row i + b
  // takes row i's column c + b where c & b is clear, else its own (16 + : the second source)
#define CGAD_LO(c) ((c) & b ? 16 + (c) - b : (c))
#define CGAD_HI(c) ((c) & b ? 16 + (c) : (c) + b)
  const __m512i lo = _mm512_setr_epi32(CGAD_LO(0), CGAD_LO(1), CGAD_LO(2), CGAD_LO(3), CGAD_LO(4), CGAD_LO(5),
                                       CGAD_LO(6), CGAD_LO(7), CGAD_LO(8), CGAD_LO(9), CGAD_LO(10), CGAD_LO(11),
                                       CGAD_LO(12), CGAD_LO(13), CGAD_LO(14), CGAD_LO(15));
  const __m512i hi = _mm512_setr_epi32(CGAD_HI(0), CGAD_HI(1), CGAD_HI(2), CGAD_HI(3), CGAD_HI(4), CGAD_HI(5),
                                       CGAD_HI(6), CGAD_HI(7), CGAD_HI(8), CGAD_HI(9), CGAD_HI(10), CGAD_HI(11),
                                       CGAD_HI(12), CGAD_HI(13), CGAD_HI(14), CGAD_HI(15));
#undef CGAD_LO
#undef CGAD_HI
  for (int i = 0; i < 16; ++i) {
    if (i & b) continue;
    const __m512i x = r[i], y = r[i + b];
    r[i] = _mm512_permutex2var_epi32(x, lo, y);
    r[i + b] = _mm512_permutex2var_epi32(x, hi, y);
  }
}

// Transposes the 16 x 16 matrix of 32-bit elements in r (row i in r[i]) in place, in four rounds
// of 16 two-source permutes.
inline void transpose16x16_epi32(__m512i r[16]) {
  transpose_round<8>(r);
  transpose_round<4>(r);
  transpose_round<2>(r);
  transpose_round<1>(r);
}

// Rounds to nearest even exactly as bf16(float) does (NaN stays a quiet NaN).
inline void store_bf16(bf16* p, __m512 v, __mmask16 m) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i hi = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(r));
}

// C's 16 columns (mask m) = alpha * acc + beta * C + bias, in the type of C: the GEMMs' epilogue.
template <typename TC>
inline void epilogue16(TC* out, __m512 acc, __mmask16 m, float alpha, float beta, const bf16* bias) {
  __m512 v = _mm512_mul_ps(acc, _mm512_set1_ps(alpha));
  if (beta != 0.0f) {
    __m512 c;
    if constexpr (std::is_same_v<TC, float>) c = _mm512_maskz_loadu_ps(m, out);
    else c = load_bf16(out, m);
    v = _mm512_fmadd_ps(_mm512_set1_ps(beta), c, v);
  }
  if (bias) v = _mm512_add_ps(v, load_bf16(bias, m));
  if constexpr (std::is_same_v<TC, float>) _mm512_mask_storeu_ps(out, m, v);
  else store_bf16(out, v, m);
}

}  // namespace
}  // namespace cgad::cpu::detail
