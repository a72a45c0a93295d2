// CPU kernels of the creation ops: arange, randn, rand, tril, multinomial.
#include <algorithm>
#include <cmath>
#include <vector>
#include "backends/cpu/parallel.h"
#include "backends/cpu/register.h"
#include "core/rng.h"
#include "kernels/creation.h"

namespace cgad::cpu {

namespace {

void arange(const Tensor& out, double start, double step) {
  dispatch_numeric(out.dtype(), "arange", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    const int64_t n = out.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + double(i) * step);
  });
}

void randn(const Tensor& out, uint64_t seed, uint64_t base) {
  const int64_t n = out.numel();
  dispatch_float(out.dtype(), "randn", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    const int64_t pairs = (n + 1) / 2;
    const int nt = threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t i = 0; i < pairs; ++i) {
      auto w = philox(seed, base + uint64_t(i));
      // Box-Muller on doubles: u1 in (0, 1] so the log is finite.
      double u1 = 1.0 - uniform_from64(w[0], w[1]);
      double u2 = uniform_from64(w[2], w[3]);
      double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
      p[2 * i] = T(r * std::cos(th));
      if (2 * i + 1 < n) p[2 * i + 1] = T(r * std::sin(th));
    }
  });
}

void rand(const Tensor& out, uint64_t seed, uint64_t base) {
  const int64_t n = out.numel();
  dispatch_float(out.dtype(), "rand", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = out.data<T>();
    const int nt = threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t i = 0; i < n; ++i) {
      auto w = philox(seed, base + uint64_t(i));
      p[i] = T(uniform_from64(w[0], w[1]));
    }
  });
}

void tril(const Tensor& t, int64_t diagonal) {
  const int64_t R = t.size(-2), C = t.size(-1), batch = R * C == 0 ? 0 : t.numel() / (R * C);
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < R; ++i)
        for (int64_t j = std::max<int64_t>(0, i + diagonal + 1); j < C; ++j) p[(b * R + i) * C + j] = T{};
  });
}

void multinomial(const Tensor& out, const Tensor& probs, int64_t num_samples, uint64_t seed, uint64_t base) {
  const int64_t V = probs.size(-1), R = probs.numel() / V;
  const double* pp = probs.data<double>();
  // A row whose sum overflows (weights near the float64 maximum) is sampled from its weights
  // divided by its largest: the same distribution, with finite running sums (an infinite total
  // would send every draw to the last category).
  std::vector<double> scale(static_cast<size_t>(R), 1.0);
  for (int64_t r = 0; r < R; ++r) {
    double s = 0, vmax = 0;
    int64_t nonzero = 0;
    for (int64_t j = 0; j < V; ++j) {
      double v = pp[r * V + j];
      if (!(v >= 0) || !std::isfinite(v))
        throw ValueError(str("multinomial: probabilities must be finite and non-negative, got ", v, " in row ", r));
      s += v;
      vmax = std::max(vmax, v);
      nonzero += v > 0;
    }
    if (!std::isfinite(s)) scale[size_t(r)] = 1.0 / vmax;
    if (!(s > 0)) throw ValueError(str("multinomial: row ", r, " of the probabilities sums to zero"));
    if (nonzero < num_samples)  // without replacement, each draw needs a category left to pick
      throw ValueError(str("multinomial: cannot draw ", num_samples, " samples without replacement from row ", r,
                           ", which has ", nonzero, " categories of nonzero probability"));
  }
  int64_t* po = out.data<int64_t>();
  std::vector<double> w(static_cast<size_t>(V));
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t j = 0; j < V; ++j) w[j] = pp[r * V + j] * scale[size_t(r)];
    for (int64_t s = 0; s < num_samples; ++s) {  // without replacement: drawn categories drop out
      double total = 0;
      for (int64_t j = 0; j < V; ++j) total += w[j];
      auto words = philox(seed, base + uint64_t(r * num_samples + s));
      double u = uniform_from64(words[0], words[1]) * total, acc = 0;
      int64_t pick = -1;
      for (int64_t j = 0; j < V; ++j) {
        if (w[j] <= 0) continue;
        acc += w[j];
        pick = j;
        if (u < acc) break;
      }
      po[r * num_samples + s] = pick;
      w[pick] = 0;
    }
  }
}

}  // namespace

CGAD_REGISTER_CPU_KERNEL(arange_kernel, arange);
CGAD_REGISTER_CPU_KERNEL(randn_kernel, randn);
CGAD_REGISTER_CPU_KERNEL(rand_kernel, rand);
CGAD_REGISTER_CPU_KERNEL(tril_kernel, tril);
CGAD_REGISTER_CPU_KERNEL(multinomial_kernel, multinomial);

}  // namespace cgad::cpu
