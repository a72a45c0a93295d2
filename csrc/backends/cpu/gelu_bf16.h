// GELU's tanh form on bf16 data with AVX-512 (gelu_bf16_avx512.cpp): 16 elements a vector in
// float32, rounded to bf16 once on the store, the formulas of kernels/gelu_math.h. The
// auto-vectorized loop of gelu.cpp runs 8 wide with exp's range selects and a division per
// element, about 4x slower than this on char's (3072, 1536) activations (bench/ops.py).
// gelu.cpp calls these only where gelu_bf16_avx512_usable() (any CPU with AVX-512 F/BW/VL, also
// in a CGAD_NATIVE=OFF build); elsewhere its portable loop runs.
#pragma once
#include <cstdint>
#include "core/dtype.h"

namespace cgad::cpu::detail {

bool gelu_bf16_avx512_usable();
void gelu_tanh_forward_bf16_avx512(const bf16* x, bf16* y, int64_t n);
void gelu_tanh_backward_bf16_avx512(const bf16* x, const bf16* g, bf16* dx, int64_t n);

}  // namespace cgad::cpu::detail
