// A node of the backward graph: the VJP of one op. Each op's node lives beside its forward in
// csrc/ops (DESIGN.md habit 1); this file holds the base class, the leaf accumulator and the
// helper every op uses to record itself.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>
#include "autograd/grad_mode.h"
#include "core/tensor.h"

namespace cgad {

class SavedTensor;

struct Node {
  std::vector<std::shared_ptr<Node>> next;  // one per input; null where no grad flows
  std::vector<Shape> input_shapes;           // to check each returned grad's shape
  uint64_t seq = 0;                          // creation order: later nodes run first
  bool released = false;                     // saved tensors freed after a backward
  // Set by the engine before backward(): no retain_graph, so this call is the last use of the
  // saved tensors, and a node may reuse a saved buffer nothing else holds for its grad.
  bool final_use = false;
  // Every SavedTensor member of the node, registered by its constructor.
  std::vector<SavedTensor*> saved;

  Node() = default;
  Node(const Node&) = delete;  // `saved` points into this object
  Node& operator=(const Node&) = delete;
  // Frees the chain of nodes only this one keeps alive with a loop, not one destructor inside
  // the next: a graph a million ops deep would overflow the stack.
  virtual ~Node();
  virtual const char* name() const = 0;
  // Given d(loss)/d(output), returns d(loss)/d(input_i) for each input (undefined where
  // next[i] is null or the grad is zero by construction). Runs with grad mode off.
  virtual std::vector<Tensor> backward(const Tensor& grad) = 0;
  // View nodes (slice, select, split's pieces) say adds_into_input(), and the engine calls
  // add_into_input instead of backward: the node adds its grad straight into its input's grad
  // buffer `input_grad` (contiguous, owned by the engine), so the pieces of one tensor share one
  // buffer instead of each making a full-size zero tensor to be summed.
  virtual bool adds_into_input() const { return false; }
  virtual void add_into_input(Tensor& input_grad, const Tensor& grad) {}
  // Drops the tensors saved for backward; returns whether there were any.
  virtual bool release_saved() { return false; }
  bool needs_grad(size_t i) const { return i < next.size() && next[i] != nullptr; }
};

// A tensor a node keeps for its backward, with the version of its storage when it was saved.
// A node declares it as `SavedTensor x{this};` and assigns it like a Tensor. The engine compares
// the versions (one integer compare per saved tensor) before the node's backward runs, so an
// in-place write after the save (copy_, fill_, an optimizer step, through any view or under
// no_grad) is a RuntimeError naming the node instead of a silently wrong grad, as in torch.
class SavedTensor : public Tensor {
 public:
  explicit SavedTensor(Node* owner) { owner->saved.push_back(this); }
  SavedTensor(const SavedTensor&) = delete;
  SavedTensor& operator=(const Tensor& t) {
    Tensor::operator=(t);
    version_ = t.defined() ? t.version() : 0;
    return *this;
  }
  SavedTensor& operator=(const SavedTensor& t) { return *this = static_cast<const Tensor&>(t); }
  bool modified() const { return defined() && version() != version_; }
  uint64_t saved_version() const { return version_; }

 private:
  uint64_t version_ = 0;
};

// Sink of a leaf tensor: adds the incoming grad into leaf.grad.
struct AccumulateGrad : Node {
  std::weak_ptr<TensorImpl> leaf;
  const char* name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> backward(const Tensor& grad) override;
};

uint64_t next_sequence_nr();
std::shared_ptr<Node> grad_edge(const Tensor& t);  // grad_fn, the leaf's accumulator, or null
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Records `out` as produced by a new NodeT over `inputs` when grad mode is on and any input
// requires grad; returns the node (for the op to save what its backward needs) or null.
template <typename NodeT>
std::shared_ptr<NodeT> record(Tensor& out, std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled() || !any_requires_grad(inputs)) return nullptr;
  auto n = std::make_shared<NodeT>();
  n->seq = next_sequence_nr();
  for (const Tensor* t : inputs) {
    n->next.push_back(t->defined() ? grad_edge(*t) : nullptr);
    n->input_shapes.push_back(t->defined() ? t->shape() : Shape{});
  }
  out.impl()->grad_fn = n;
  out.impl()->requires_grad = true;
  return n;
}

// d(loss)/d(root) flows back through the graph into every leaf's .grad.
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace cgad
