// CPU kernel of dropout's mask: Philox counters give 4 uniforms each, so element i reads counter
// base + i / 4, and the mask is the same whatever the thread count.
#include "backends/cpu/parallel_rows.h"
#include "backends/cpu/register.h"
#include "kernels/nn.h"
#include "kernels/random_math.h"

namespace cgad::cpu {

namespace {

void dropout_mask(const Tensor& mask, double p, uint64_t seed, uint64_t base) {
  const int64_t n = mask.numel();
  dispatch_float(mask.dtype(), "dropout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* m = mask.data<T>();
    const T keep = p >= 1.0 ? T(0) : T(1.0 / (1.0 - p));
    const float pf = float(p);
    parallel_rows((n + 3) / 4, n, [&](int64_t c) {
      const PhiloxWords w = philox(seed, base + uint64_t(c));
      for (int k = 0; k < 4 && c * 4 + k < n; ++k) m[c * 4 + k] = math::dropout_value(w, k, pf, keep);
    });
  });
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(dropout_mask_kernel, dropout_mask);

}  // namespace cgad::cpu
