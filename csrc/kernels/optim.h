// Kernel stubs of the optimizer and gradient clipping (optim/): multi-tensor kernels, one call
// over a whole parameter group or grad list, so a device backend can fuse the launches and the
// host never reads device data.
#pragma once
#include <vector>
#include "core/dispatch.h"
#include "core/tensor.h"

namespace cgad {

struct AdamHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = true;  // AdamW (decay scales the weights) or Adam (decay added to the grad, L2)
};

// One parameter's tensors (all contiguous, of the parameter's dtype and shape) and its step
// count after this update.
struct AdamSlot {
  Tensor param, grad, exp_avg, exp_avg_sq;
  int64_t step = 0;
};

// One Adam/AdamW update of every slot, following torch.optim.Adam's single-tensor arithmetic.
CGAD_DECLARE_KERNEL(adam_kernel, void(const std::vector<AdamSlot>& slots, const AdamHyper& hp));
// norm (0-d float32) = sqrt(sum over grads of float32(||g||)^2), each ||g|| summed in double in a
// fixed order for a given thread count (grads contiguous).
CGAD_DECLARE_KERNEL(grad_norm_kernel, void(const Tensor& norm, const std::vector<Tensor>& grads));
// Every grad *= min(1, max_norm / (norm + 1e-6)), torch's formula, computed where norm lives.
CGAD_DECLARE_KERNEL(clip_scale_kernel, void(const std::vector<Tensor>& grads, const Tensor& norm, double max_norm));

}  // namespace cgad
