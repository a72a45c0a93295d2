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
