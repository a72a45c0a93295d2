// Adam and AdamW, exactly as torch.optim (bias correction; AdamW's weight decay decoupled,
// Adam's coupled as L2), as one multi-tensor step over every parameter that has a grad.
#pragma once
#include <vector>
#include "core/tensor.h"

namespace cgad {

struct AdamGroup {
  std::vector<Tensor> params;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

struct AdamState {
  int64_t step = 0;
  Tensor exp_avg, exp_avg_sq;  // created at a parameter's first step
};

class Adam {
 public:
  explicit Adam(bool decoupled_weight_decay) : decoupled_(decoupled_weight_decay) {}
  // Appends a group; ValueError for bad hyperparameters, TypeError for non-float or non-leaf params.
  void add_group(const std::vector<Tensor>& params, double lr, double beta1, double beta2, double eps,
                 double weight_decay);
  void set_hyper(size_t group, double lr, double beta1, double beta2, double eps, double weight_decay);
  size_t num_groups() const { return groups_.size(); }
  const AdamGroup& group(size_t i) const;
  // One update of every parameter with a grad; those without are skipped (and keep their step).
  void step();
  void set_alpha(double lr);  // every group's lr
  double get_alpha() const;   // group 0's lr
  // State by the parameter's index over all groups in order (torch's state_dict numbering).
  size_t num_params() const { return states_.size(); }
  const AdamState& state(size_t i) const;
  void set_state(size_t i, int64_t step, const Tensor& exp_avg, const Tensor& exp_avg_sq);
  bool decoupled() const { return decoupled_; }

 private:
  bool decoupled_;
  std::vector<AdamGroup> groups_;
  std::vector<AdamState> states_;
};

// Scales every grad by min(1, max_norm / (norm + 1e-6)) (torch's formula) and returns the total
// L2 norm before clipping as a 0-d float32 tensor. Undefined grads are skipped.
Tensor clip_grad_norm(const std::vector<Tensor>& grads, double max_norm);

}  // namespace cgad
