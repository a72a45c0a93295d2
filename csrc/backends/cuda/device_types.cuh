// Element types of the CUDA kernels: a cgad dtype's storage as the device sees it (bfloat16 is
// __nv_bfloat16, the same 16-bit words as cgad::bf16), the type each is computed in (bfloat16 in
// float32, rounded once to nearest even on the store, as the CPU kernels do), and the launch
// shape of a grid-stride loop.
#pragma once
#include <cuda_bf16.h>
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include "core/dtype.h"

namespace cgad::cuda {

// The device storage type of the host type T (cgad::bf16 -> __nv_bfloat16).
template <typename T>
using DeviceT = std::conditional_t<std::is_same_v<T, bf16>, __nv_bfloat16, T>;

// The type data of storage type S is computed in.
template <typename S>
using ComputeT = std::conditional_t<std::is_same_v<S, __nv_bfloat16>, float, S>;

template <typename S>
__device__ __forceinline__ ComputeT<S> load(const S* p) {
  if constexpr (std::is_same_v<S, __nv_bfloat16>) return __bfloat162float(*p);
  else return *p;
}

template <typename S>
__device__ __forceinline__ void store(S* p, ComputeT<S> v) {
  if constexpr (std::is_same_v<S, __nv_bfloat16>) *p = __float2bfloat16_rn(v);
  else *p = v;
}

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, few enough that each
// thread does several elements (and within the grid's x limit).
inline unsigned grid_stride_blocks(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return unsigned(std::clamp<int64_t>(blocks, 1, int64_t(1) << 16));
}

}  // namespace cgad::cuda
