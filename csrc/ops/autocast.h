// The casts of cgad.autocast's op table (DESIGN.md), for the ops that read the region's state:
// matmul, linear and attention lower their float32 inputs to the region's dtype; layer_norm,
// softmax, log_softmax, cross_entropy, sum and mean raise bfloat16 inputs to float32. Every cast
// is a graph op, so grads return to each input in its own dtype.
#pragma once
#include "core/tensor.h"

namespace cgad {

// Whether autocast is on for d's device type on this thread.
bool autocast_enabled(Device d);
// Under autocast, a float32 t as the region's dtype; t itself otherwise. A leaf that requires
// grad (a parameter) is cast once per region and the copy reused (torch's cast cache).
Tensor autocast_lower(const Tensor& t);
// A bfloat16 t as float32, t itself otherwise: the float32 ops of the table, under autocast.
Tensor autocast_float(const Tensor& t);
// Empties this thread's cast cache: when the outermost autocast region exits.
void clear_autocast_cache();
size_t autocast_cache_size();

}  // namespace cgad

namespace cgad {

// For the ops without a bfloat16 kernel: t as float32 when it is bfloat16 (a graph op), t
// itself otherwise (undefined too).
Tensor as_float32(const Tensor& t);
// The result y (float32) of such an op computed for a bfloat16 input: it stays float32 under
// autocast for the table's float32 ops (float32_op), and goes back to bfloat16 otherwise.
Tensor bf16_result(const Tensor& y, bool float32_op);

}  // namespace cgad
