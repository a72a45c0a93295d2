// Kernel stubs of the creation ops (ops/creation.cpp): filled on the output's device. Random
// kernels get the generator's key and the first counter the op reserved, so a draw depends only
// on (seed, offset) whatever the device or thread count.
#pragma once
#include "core/dispatch.h"
#include "core/tensor.h"

namespace cgad {

// out[i] = start + i * step (1-D contiguous out, any numeric dtype).
CGAD_DECLARE_KERNEL(arange_kernel, void(const Tensor& out, double start, double step));
// Standard normals (Box-Muller on double pairs from counters base, base+1, ...) into contiguous out.
CGAD_DECLARE_KERNEL(randn_kernel, void(const Tensor& out, uint64_t seed, uint64_t base));
// Uniforms in [0, 1), one counter per element.
CGAD_DECLARE_KERNEL(rand_kernel, void(const Tensor& out, uint64_t seed, uint64_t base));
// Zeroes the elements above diagonal `diagonal` of every (R, C) matrix of the contiguous t.
CGAD_DECLARE_KERNEL(tril_kernel, void(const Tensor& t, int64_t diagonal));
// out (R, num_samples) int64: draws without replacement from each row of the contiguous float64
// probs (R, V); ValueError for rows that are negative, non-finite or sum to zero.
CGAD_DECLARE_KERNEL(multinomial_kernel, void(const Tensor& out, const Tensor& probs, int64_t num_samples,
                                             uint64_t seed, uint64_t base));

}  // namespace cgad
