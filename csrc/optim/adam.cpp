// Adam/AdamW: hyperparameters, per-parameter state and the step's bookkeeping. The update itself
// is one multi-tensor kernel per parameter group (kernels/optim.h), on the parameters' device.
#include "optim/adam.h"
#include "core/error.h"
#include "kernels/optim.h"
#include "ops/ops.h"

namespace cgad {

CGAD_DEFINE_KERNEL(adam_kernel, void(const std::vector<AdamSlot>&, const AdamHyper&));

namespace {

void check_hyper(double lr, double beta1, double beta2, double eps, double wd) {
  if (!(lr >= 0)) throw ValueError(str("Adam: invalid learning rate ", lr));
  if (!(eps >= 0)) throw ValueError(str("Adam: invalid eps ", eps));
  if (!(beta1 >= 0 && beta1 < 1)) throw ValueError(str("Adam: invalid beta1 ", beta1, " (expected 0 <= beta1 < 1)"));
  if (!(beta2 >= 0 && beta2 < 1)) throw ValueError(str("Adam: invalid beta2 ", beta2, " (expected 0 <= beta2 < 1)"));
  if (!(wd >= 0)) throw ValueError(str("Adam: invalid weight_decay ", wd));
}

}  // namespace

void Adam::add_group(const std::vector<Tensor>& params, double lr, double beta1, double beta2, double eps,
                     double weight_decay) {
  check_hyper(lr, beta1, beta2, eps, weight_decay);
  for (const Tensor& p : params) {
    if (!p.defined()) throw TypeError("Adam: a parameter is None");
    check_float_dtype(p.dtype(), "Adam", "parameters");
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
    // Checked and prepared for the whole group first, so a bad grad changes nothing.
    std::vector<AdamSlot> slots;
    std::vector<AdamState*> stepped;
    for (const Tensor& p : grp.params) {
      AdamState& st = states_[idx++];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      if (g.shape() != p.shape() || g.dtype() != p.dtype())
        throw ValueError(str("Adam: grad of shape ", shape_str(g.shape()), " ", dtype_name(g.dtype()), " does not match its parameter ",
                             shape_str(p.shape()), " ", dtype_name(p.dtype())));
      check_same_device(p, g, "Adam");
      if (!slots.empty()) check_same_device(slots.front().param, p, "Adam");
      if (!st.exp_avg.defined()) {  // the moments live beside the parameter, in float32 (float64 for float64)
        st.exp_avg = zeros(p.shape(), stats_dtype(p.dtype()), p.device());
        st.exp_avg_sq = zeros(p.shape(), stats_dtype(p.dtype()), p.device());
      }
      slots.push_back({p, contiguous_data(g), st.exp_avg, st.exp_avg_sq, st.step + 1});
      stepped.push_back(&st);
    }
    if (slots.empty()) continue;
    const AdamHyper hp{grp.lr, grp.beta1, grp.beta2, grp.eps, grp.weight_decay, decoupled_};
    adam_kernel()(slots.front().param.device(), slots, hp);
    for (const AdamSlot& slot : slots) slot.param.bump_version();
    for (AdamState* st : stepped) st->step += 1;
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
  // copies on the parameter's device, whatever device the loaded state came from
  const DType sd = stats_dtype(p->dtype());
  states_[i] = {step, contiguous_data(clone(cast(to_device(exp_avg.detach(), p->device()), sd))).detach(),
                contiguous_data(clone(cast(to_device(exp_avg_sq.detach(), p->device()), sd))).detach()};
}

}  // namespace cgad
