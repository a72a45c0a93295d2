// The backward engine: orders the graph reachable from the root by dependency count, runs
// each node once all its consumers have contributed, and sums grads arriving at a node.
#include <atomic>
#include <queue>
#include <unordered_map>
#include <unordered_set>
#include "autograd/node.h"
#include "ops/ops.h"

namespace cgad {

static thread_local bool g_grad_enabled = true;
bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool on) { g_grad_enabled = on; }

uint64_t next_sequence_nr() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

Node::~Node() {
  // The nodes this one alone keeps alive go on a stack; each is destroyed only after its saved
  // tensors (which may hold the next node through their grad_fn) are dropped and its own edges
  // moved onto the stack, so its destructor finds nothing left to free.
  std::vector<std::shared_ptr<Node>> stack;
  auto take_edges = [&stack](Node& n) {
    std::vector<std::shared_ptr<Node>> edges = std::move(n.next);
    n.next.clear();
    // An input used twice (x * x) is two edges to one node: the first copies are dropped, so
    // the last sees a count of 1 and goes on the stack instead of being freed right here.
    for (auto& e : edges) {
      if (e && e.use_count() == 1) stack.push_back(std::move(e));
      else e.reset();
    }
  };
  take_edges(*this);
  while (!stack.empty()) {
    std::shared_ptr<Node> n = std::move(stack.back());
    stack.pop_back();
    for (SavedTensor* t : n->saved) *t = Tensor();
    take_edges(*n);
  }
}

namespace {

// RuntimeError naming the node when a tensor it saved was written in place since.
void check_saved_versions(const Node& node) {
  for (const SavedTensor* t : node.saved)
    if (t->modified())
      throw RuntimeError(str("backward: one of the tensors needed for gradient computation has been modified by an in-place operation: ",
                             node.name(), "'s saved tensor of shape ", shape_str(t->shape()), " is at version ", t->version(),
                             "; expected version ", t->saved_version(), " instead"));
}

}  // namespace

std::shared_ptr<Node> grad_edge(const Tensor& t) {
  if (!t.requires_grad()) return nullptr;
  if (t.grad_fn()) return t.grad_fn();
  TensorImpl* impl = t.impl();
  if (auto acc = impl->grad_accumulator.lock()) return acc;
  auto acc = std::make_shared<AccumulateGrad>();
  acc->leaf = t.impl_ptr();
  acc->seq = next_sequence_nr();
  acc->input_shapes.push_back(t.shape());
  impl->grad_accumulator = acc;
  return acc;
}

std::vector<Tensor> AccumulateGrad::backward(const Tensor& grad) {
  auto impl = leaf.lock();
  if (!impl) return {};
  Tensor g = grad;
  if (g.dtype() != impl->dtype) g = to_dtype(g, impl->dtype);
  if (!impl->grad.defined()) {
    // Take the incoming buffer when nothing else can see it; otherwise own a copy.
    bool exclusive = g.impl_ptr().use_count() <= 2 && g.impl()->storage.use_count() == 1 &&
                     g.is_contiguous() && g.impl()->offset == 0;
    impl->grad = exclusive ? g.detach() : clone(g);
  } else {
    add_(impl->grad, g);
  }
  return {};
}

void run_backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  if (!root.requires_grad())
    throw RuntimeError("backward: element 0 of tensors does not require grad and does not have a grad_fn");
  Tensor grad = grad_in;
  if (!grad.defined()) {
    if (root.numel() != 1)
      throw RuntimeError(str("backward: grad can be implicitly created only for scalar outputs, got shape ", shape_str(root.shape())));
    grad = full(root.shape(), 1.0, root.dtype(), root.device());
  } else if (grad.shape() != root.shape()) {
    throw ValueError(str("backward: grad of shape ", shape_str(grad.shape()), " does not match the output shape ", shape_str(root.shape())));
  }
  NoGradGuard no_grad;
  std::shared_ptr<Node> root_node = grad_edge(root);

  // Dependency counts over the reachable graph. The saved tensors' versions are checked on the
  // way, so a stale one is an error before any node has run or any leaf's grad has changed.
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack{root_node.get()};
  std::unordered_set<Node*> seen{root_node.get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    check_saved_versions(*n);
    for (auto& e : n->next) {
      if (!e) continue;
      deps[e.get()] += 1;
      if (seen.insert(e.get()).second) stack.push_back(e.get());
    }
  }

  auto later_first = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) { return a->seq < b->seq; };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(later_first)> ready(later_first);
  std::unordered_map<Node*, Tensor> buffers;
  buffers[root_node.get()] = grad;
  ready.push(root_node);
  std::vector<std::shared_ptr<Node>> ran;
  // Buffers the engine allocated itself (nothing else holds them), so grads add in place.
  std::unordered_set<Node*> owned;

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    Tensor g = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    owned.erase(node.get());
    if (g.defined() && node->adds_into_input() && node->next.size() == 1 && node->next[0]) {
      Node* child = node->next[0].get();
      Tensor& buf = buffers[child];
      if (!buf.defined() || !owned.count(child) || !buf.is_contiguous()) {
        Tensor fresh = zeros(node->input_shapes[0], g.dtype(), g.device());
        if (buf.defined()) add_(fresh, buf);
        buf = fresh;
        owned.insert(child);
      }
      node->add_into_input(buf, g);
      ran.push_back(node);
      if (--deps[child] == 0) ready.push(node->next[0]);
      continue;
    }
    std::vector<Tensor> grads;
    if (g.defined()) {
      if (node->released)
        throw RuntimeError(str("backward: trying to backward through the graph a second time (", node->name(),
                               "'s saved tensors were freed); pass retain_graph=True to the first backward"));
      node->final_use = !retain_graph;
      grads = node->backward(g);
      // Free what the node saved as soon as it ran (logits, activations), not after the whole
      // backward, so the allocator can reuse those blocks for the grads still to come.
      if (!retain_graph && node->release_saved()) node->released = true;
      ran.push_back(node);
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* child = node->next[i].get();
      if (!child) continue;
      if (i < grads.size() && grads[i].defined()) {
        if (grads[i].shape() != node->input_shapes[i])
          throw RuntimeError(str(node->name(), ": backward returned grad of shape ", shape_str(grads[i].shape()),
                                 " for input ", i, " of shape ", shape_str(node->input_shapes[i])));
        Tensor& buf = buffers[child];
        if (!buf.defined()) {
          buf = grads[i];
        } else if (owned.count(child) && buf.dtype() == grads[i].dtype()) {
          add_(buf, grads[i]);
        } else {
          buf = add(buf, grads[i]);
          owned.insert(child);
        }
      }
      if (--deps[child] == 0) ready.push(node->next[i]);
    }
  }
  if (!retain_graph)
    for (auto& n : ran)
      if (n->release_saved()) n->released = true;
}

}  // namespace cgad
