// GELU (tanh form) on bf16 with AVX-512 (gelu_bf16.h), compiled by a target pragma like the bf16
// GEMM kernels: headers first, then the pragma, and only the entry points have external linkage.
//
// tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|), as vm::tanh; exp's argument is never
// positive here, so only its lower clamp remains. exp is vm::exp's: Cody-Waite reduction by ln 2
// in two parts and the same degree-6 polynomial. The kernel is bound by the two 512-bit vector
// ports (about 60 instructions per 16 elements), so every instruction saved counts. The division is a reciprocal refined by one Newton
// step: a few float32 ulps, far below the bf16 rounding on the store.
#include <immintrin.h>
#include <cstdint>
#include <type_traits>
#include "backends/cpu/gelu_bf16.h"
#include "kernels/gelu_math.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#elif defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl"))), apply_to = function)
#endif

#include "backends/cpu/bf16_avx512.h"

namespace cgad::cpu::detail {

namespace {

// exp(x) for x <= 0 as vm::exp computes it, but for arguments below -87, which give exp(-87)
// (1.6e-38) rather than 0: tanh's 1 +- e rounds to 1 either way. The integer part rounds to
// nearest even (vrndscaleps, as vm::exp's shifter does) and scales by vscalefps (exact for it).
inline __m512 exp_nonpositive(__m512 x) {
  const __m512 xc = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));  // NaN becomes -87: v carries it
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// tanh(u) by vm::tanh's formula.
inline __m512 tanh16(__m512 u) {
  // sign bit handling in integer registers: the float forms of and/or are AVX512DQ, which this
  // file does not require
  const __m512i sign = _mm512_set1_epi32(int32_t(0x80000000u)), ui = _mm512_castps_si512(u);
  const __m512 au = _mm512_castsi512_ps(_mm512_andnot_si512(sign, ui));
  const __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_set1_ps(-2.0f), au));
  const __m512 one = _mm512_set1_ps(1.0f);
  // 1 / (1 + e) from the 14-bit reciprocal and one Newton step (within 2^-27 relative; a zmm
  // division alone took half of the kernel's time)
  const __m512 d = _mm512_add_ps(one, e);
  __m512 q = _mm512_rcp14_ps(d);
  q = _mm512_mul_ps(q, _mm512_fnmadd_ps(d, q, _mm512_set1_ps(2.0f)));
  const __m512 t = _mm512_mul_ps(_mm512_sub_ps(one, e), q);
  // t >= 0: copy u's sign onto it
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), _mm512_and_si512(ui, sign)));
}

// u = sqrt(2/pi) (v + 0.044715 v^3)
inline __m512 tanh_arg(__m512 v) {
  const __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
  return _mm512_mul_ps(_mm512_set1_ps(float(math::kGeluSqrt2OverPi)),
                       _mm512_fmadd_ps(_mm512_set1_ps(float(math::kGeluCubic)), v3, v));
}

}  // namespace

bool gelu_bf16_avx512_usable() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  return ok;
}

void gelu_tanh_forward_bf16_avx512(const bf16* x, bf16* y, int64_t n) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 v = load_bf16(x + i, m);
    const __m512 th = tanh16(tanh_arg(v));
    store_bf16(y + i, _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, th)), m);
  }
}

void gelu_tanh_backward_bf16_avx512(const bf16* x, const bf16* g, bf16* dx, int64_t n) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 c0 = _mm512_set1_ps(float(math::kGeluSqrt2OverPi)), c3 = _mm512_set1_ps(float(3 * math::kGeluCubic));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    const __m512 v = load_bf16(x + i, m);
    const __m512 th = tanh16(tanh_arg(v));
    // 0.5 (1 + th) + 0.5 v (1 - th^2) du, du = sqrt(2/pi) (1 + 3 * 0.044715 v^2)
    const __m512 du = _mm512_mul_ps(c0, _mm512_fmadd_ps(c3, _mm512_mul_ps(v, v), one));
    const __m512 sech2 = _mm512_fnmadd_ps(th, th, one);
    const __m512 grad =
        _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(half, v), sech2), du, _mm512_mul_ps(half, _mm512_add_ps(one, th)));
    store_bf16(dx + i, _mm512_mul_ps(load_bf16(g + i, m), grad), m);
  }
}

}  // namespace cgad::cpu::detail

#include "backends/cpu/target_end.h"  // closes the target region opened above
