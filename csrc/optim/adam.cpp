// Adam/AdamW: the update follows torch.optim.Adam's single-tensor path operation by operation
// (lerp for exp_avg, mul + addcmul for exp_avg_sq, sqrt / bias_correction2_sqrt + eps, addcdiv),
// each rounded to the parameter's dtype, so trajectories match torch's to rounding.
#include "optim/adam.h"
#include <cmath>
#include <type_traits>
#include "backends/cpu/parallel.h"
#include "core/error.h"
#include "ops/ops.h"

namespace cgad {

namespace {

void check_hyper(double lr, double beta1, double beta2, double eps, double wd) {
  if (!(lr >= 0)) throw ValueError(str("Adam: invalid learning rate ", lr));
  if (!(eps >= 0)) throw ValueError(str("Adam: invalid eps ", eps));
  if (!(beta1 >= 0 && beta1 < 1)) throw ValueError(str("Adam: invalid beta1 ", beta1, " (expected 0 <= beta1 < 1)"));
  if (!(beta2 >= 0 && beta2 < 1)) throw ValueError(str("Adam: invalid beta2 ", beta2, " (expected 0 <= beta2 < 1)"));
  if (!(wd >= 0)) throw ValueError(str("Adam: invalid weight_decay ", wd));
}

// One chunk of the update. The weight-decay mode is a template parameter so the loop has no
// branches and vectorizes; every element goes through the same operations as torch's.
enum class Decay { None, Decoupled, L2 };

template <typename T, Decay D>
void adam_chunk(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, int64_t n, T w1,
                T beta2, T one_m_b2, T step_size, T bc2_sqrt, T eps, T decay, T wd) {
  const bool lerp_low = w1 < T(0.5);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    T gi = g[i];
    T pi = p[i];
    if constexpr (D == Decay::Decoupled) pi = pi * decay;
    if constexpr (D == Decay::L2) gi = gi + pi * wd;
    // torch's lerp: start + w * (end - start) for w < 0.5, else end - (end - start) * (1 - w)
    const T mi = lerp_low ? m[i] + w1 * (gi - m[i]) : gi - (gi - m[i]) * (T(1) - w1);
    T vi = v[i] * beta2;
    vi = vi + one_m_b2 * gi * gi;
    const T denom = std::sqrt(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + (-step_size) * mi / denom;
  }
}

template <typename T>
void adam_kernel(T* p, const T* g, T* m, T* v, int64_t n, const AdamGroup& hp, int64_t step, bool decoupled) {
  const T lr = T(hp.lr), wd = T(hp.weight_decay), eps = T(hp.eps);
  const T w1 = T(1 - hp.beta1), beta2 = T(hp.beta2), one_m_b2 = T(1 - hp.beta2);
  const double bc1 = 1 - std::pow(hp.beta1, double(step)), bc2 = 1 - std::pow(hp.beta2, double(step));
  const T step_size = T(hp.lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
  const T decay = T(1) - lr * wd;
  const Decay mode = hp.weight_decay == 0 ? Decay::None : decoupled ? Decay::Decoupled : Decay::L2;
  const int64_t chunk = 1 << 14, chunks = (n + chunk - 1) / chunk;
  const int nt = threads_for(n);
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * chunk, len = std::min(n, b + chunk) - b;
    auto run = [&](auto mode_tag) {
      adam_chunk<T, decltype(mode_tag)::value>(p + b, g + b, m + b, v + b, len, w1, beta2, one_m_b2, step_size,
                                               bc2_sqrt, eps, decay, wd);
    };
    if (mode == Decay::None) run(std::integral_constant<Decay, Decay::None>{});
    else if (mode == Decay::Decoupled) run(std::integral_constant<Decay, Decay::Decoupled>{});
    else run(std::integral_constant<Decay, Decay::L2>{});
  }
}

}  // namespace

void Adam::add_group(const std::vector<Tensor>& params, double lr, double beta1, double beta2, double eps,
                     double weight_decay) {
  check_hyper(lr, beta1, beta2, eps, weight_decay);
  for (const Tensor& p : params) {
    if (!p.defined()) throw TypeError("Adam: a parameter is None");
    if (p.dtype() != DType::Float32 && p.dtype() != DType::Float64)
      throw TypeError(str("Adam: parameters must be float32 or float64, got ", dtype_name(p.dtype())));
    if (!p.is_leaf()) throw ValueError("Adam: can't optimize a non-leaf tensor");
    if (!p.is_contiguous()) throw ValueError(str("Adam: parameters must be contiguous, got shape ", shape_str(p.shape())));
  }
  groups_.push_back({params, lr, beta1, beta2, eps, weight_decay});
  states_.resize(states_.size() + params.size());
}

void Adam::set_hyper(size_t gi, double lr, double beta1, double beta2, double eps, double wd) {
  if (gi >= groups_.size()) throw IndexError(str("Adam: group ", gi, " out of range (", groups_.size(), " groups)"));
  check_hyper(lr, beta1, beta2, eps, wd);
  AdamGroup& g = groups_[gi];
  g.lr = lr;
  g.beta1 = beta1;
  g.beta2 = beta2;
  g.eps = eps;
  g.weight_decay = wd;
}

const AdamGroup& Adam::group(size_t i) const {
  if (i >= groups_.size()) throw IndexError(str("Adam: group ", i, " out of range (", groups_.size(), " groups)"));
  return groups_[i];
}

void Adam::step() {
  size_t idx = 0;
  for (const AdamGroup& grp : groups_) {
    for (const Tensor& p : grp.params) {
      AdamState& st = states_[idx++];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      if (g.shape() != p.shape() || g.dtype() != p.dtype())
        throw ValueError(str("Adam: grad of shape ", shape_str(g.shape()), " ", dtype_name(g.dtype()), " does not match its parameter ",
                             shape_str(p.shape()), " ", dtype_name(p.dtype())));
      if (!st.exp_avg.defined()) {
        st.exp_avg = zeros(p.shape(), p.dtype(), p.device());
        st.exp_avg_sq = zeros(p.shape(), p.dtype(), p.device());
      }
      st.step += 1;
      Tensor gc = contiguous_data(g);
      dispatch_float(p.dtype(), "Adam", [&](auto tag) {
        using T = typename decltype(tag)::type;
        adam_kernel<T>(p.data<T>(), gc.data<T>(), st.exp_avg.data<T>(), st.exp_avg_sq.data<T>(), p.numel(), grp, st.step,
                       decoupled_);
      });
    }
  }
}

void Adam::set_alpha(double lr) {
  if (!(lr >= 0)) throw ValueError(str("set_alpha: invalid learning rate ", lr));
  for (AdamGroup& g : groups_) g.lr = lr;
}

double Adam::get_alpha() const {
  if (groups_.empty()) throw RuntimeError("get_alpha: the optimizer has no parameter groups");
  return groups_[0].lr;
}

const AdamState& Adam::state(size_t i) const {
  if (i >= states_.size()) throw IndexError(str("Adam: parameter index ", i, " out of range (", states_.size(), " params)"));
  return states_[i];
}

void Adam::set_state(size_t i, int64_t step, const Tensor& exp_avg, const Tensor& exp_avg_sq) {
  if (i >= states_.size()) throw IndexError(str("Adam: parameter index ", i, " out of range (", states_.size(), " params)"));
  const Tensor* p = nullptr;
  size_t k = i;
  for (const AdamGroup& g : groups_) {
    if (k < g.params.size()) { p = &g.params[k]; break; }
    k -= g.params.size();
  }
  for (const Tensor* t : {&exp_avg, &exp_avg_sq})
    if (t->shape() != p->shape())
      throw ValueError(str("Adam.load_state_dict: state of parameter ", i, " has shape ", shape_str(t->shape()),
                           ", expected ", shape_str(p->shape())));
  if (step < 0) throw ValueError(str("Adam.load_state_dict: negative step ", step, " for parameter ", i));
  states_[i] = {step, contiguous_data(clone(cast(exp_avg, p->dtype()))).detach(),
                contiguous_data(clone(cast(exp_avg_sq, p->dtype()))).detach()};
}

}  // namespace cgad
