// f(i) for i in [b, e), vectorized: `omp simd` for float and double; bf16 loops are left to the
// auto-vectorizer, because `omp simd` turns the bf16 temporaries into per-lane arrays, which GCC
// then runs scalar (gelu.cpp's and cross_entropy.cpp's bf16 loops, 4-5x slower measured).
#pragma once
#include <cstdint>
#include <type_traits>
#include "core/dtype.h"

namespace cgad::cpu {

template <typename S, typename F>
inline void simd_loop(int64_t b, int64_t e, F&& f) {
  if constexpr (std::is_same_v<S, bf16>) {
    for (int64_t i = b; i < e; ++i) f(i);
  } else {
#pragma omp simd
    for (int64_t i = b; i < e; ++i) f(i);
  }
}

}  // namespace cgad::cpu
