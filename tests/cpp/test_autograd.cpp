// The backward engine: topological order over a diamond, accumulation into leaves, released
// graphs, retain_graph, no_grad, saved-tensor versions, graphs deeper than the stack.
#include "autograd/node.h"
#include "autograd/autocast.h"
#include "check.h"
#include "ops/ops.h"

using namespace cgad;

int main() {
  Tensor x = full({3}, 2.0, DType::Float64, Device{});
  x.set_requires_grad(true);
  Tensor y = mul(x, x);                  // y = x^2
  Tensor z = add(mul(y, x), y);          // z = x^3 + x^2 (x reaches z by two paths)
  Tensor loss = sum(z, {}, false);
  run_backward(loss, Tensor(), true);
  CHECK_NEAR(x.grad().data<double>()[0], 3 * 4 + 2 * 2, 1e-12);  // 3x^2 + 2x at 2
  run_backward(loss, Tensor(), false);  // retained: a second backward accumulates
  CHECK_NEAR(x.grad().data<double>()[1], 2 * 16.0, 1e-12);
  CHECK_THROWS(RuntimeError, run_backward(loss, Tensor(), false));  // the graph is freed now
  CHECK_THROWS(RuntimeError, run_backward(z, Tensor(), false));     // non-scalar without grad
  {
    NoGradGuard g;
    Tensor w = mul(x, x);
    CHECK(!w.requires_grad() && !w.grad_fn());
  }
  Tensor a = full({2, 2}, 1.0, DType::Float64, Device{});
  a.set_requires_grad(true);
  Tensor v = sum(reshape(transpose(a, 0, 1), {4}), {}, false);  // views keep the graph
  run_backward(v, Tensor(), false);
  CHECK(a.grad().defined() && a.grad().data<double>()[3] == 1.0);
  // A saved tensor written in place after the save is an error at backward, before any grad.
  Tensor p = full({3}, 1.0, DType::Float64, Device{});
  p.set_requires_grad(true);
  Tensor q = full({3}, 2.0, DType::Float64, Device{});
  Tensor pq = sum(mul(p, q), {}, false);
  const uint64_t v0 = q.version();
  fill_(q, 5.0);  // MulBackward saved q for p's grad
  CHECK(q.version() == v0 + 1);
  CHECK_THROWS(RuntimeError, run_backward(pq, Tensor(), false));
  CHECK(!p.grad().defined());
  // A chain deeper than any stack frees itself (and, under ASan's leak check, completely).
  {
    Tensor leaf = full({1}, 1.0, DType::Float32, Device{});
    leaf.set_requires_grad(true);
    Tensor chain = leaf;
    for (int i = 0; i < 200000; ++i) chain = mul(chain, full({}, 1.0, DType::Float32, Device{}));
    run_backward(sum(chain, {}, false), Tensor(), false);
    CHECK(leaf.grad().data<float>()[0] == 1.0f);
    for (int i = 0; i < 200000; ++i) chain = mul(chain, chain);  // never run: its saved tensors hold the chain too
  }
  // Autocast state sits beside grad mode: per device type, restored by its guard.
  CHECK(!Autocast::get(DeviceType::CPU).enabled);
  {
    AutocastGuard g(DeviceType::CPU, {true, DType::BFloat16});
    CHECK(Autocast::get(DeviceType::CPU).enabled && Autocast::get(DeviceType::CPU).dtype == DType::BFloat16);
    CHECK(!Autocast::get(DeviceType::CUDA).enabled);
  }
  CHECK(!Autocast::get(DeviceType::CPU).enabled);
  return cgad_test::finish("test_autograd");
}
