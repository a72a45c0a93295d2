// clip_grad_norm_: torch's formula, as two multi-tensor kernels on the grads' device: the total
// norm (kernels/optim.h says how it is summed), then the scale, computed where the norm lives.
#include "kernels/optim.h"
#include "ops/ops.h"
#include "optim/adam.h"

namespace cgad {

CGAD_DEFINE_KERNEL(grad_norm_kernel, void(const Tensor&, const std::vector<Tensor>&));
CGAD_DEFINE_KERNEL(clip_scale_kernel, void(const std::vector<Tensor>&, const Tensor&, double));

Tensor clip_grad_norm(const std::vector<Tensor>& grads, double max_norm) {
  if (!(max_norm >= 0)) throw ValueError(str("clip_grad_norm_: max_norm must be non-negative, got ", max_norm));
  std::vector<Tensor> dense, originals;
  for (const Tensor& g : grads) {
    if (!g.defined()) continue;
    check_float_dtype(g.dtype(), "clip_grad_norm_", "grads");
    if (!originals.empty()) check_same_device(originals.front(), g, "clip_grad_norm_");
    dense.push_back(contiguous_data(g));
    originals.push_back(g);
  }
  const Device device = originals.empty() ? Device{} : originals.front().device();
  Tensor norm = empty({}, DType::Float32, device);
  grad_norm_kernel()(device, norm, dense);
  clip_scale_kernel()(device, originals, norm, max_norm);
  for (const Tensor& g : originals) g.bump_version();
  return norm;
}

}  // namespace cgad
