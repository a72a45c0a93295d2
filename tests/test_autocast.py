"""cgad.autocast("cpu", dtype=cgad.bfloat16): DESIGN.md's op table (against a table committed
here), the per-region cast cache, float32 grads on float32 parameters, nesting, enabled=False,
the decorator, the same results as torch's CPU autocast, and GPT training under autocast."""
import math

import numpy as np
import pytest

import cgad
import cgad.nn as nn
import cgad.nn.functional as F
from cgad.models.gpt import GPT, GPTConfig
from conftest import DEVICES, nmax_err

f32, bf16 = cgad.float32, cgad.bfloat16

# op -> result dtype under autocast, for float32 inputs and for bf16 inputs (DESIGN.md's table)
OP_TABLE = {
    "matmul": (bf16, bf16), "linear": (bf16, bf16), "sdpa": (bf16, bf16),
    "layer_norm": (f32, f32), "softmax": (f32, f32), "log_softmax": (f32, f32), "cross_entropy": (f32, f32),
    "sum": (f32, f32), "mean": (f32, f32),
    "add_f32": (f32, f32), "gelu": (f32, bf16), "exp": (f32, bf16), "mul_scalar": (f32, bf16),
}


def run_op(name, x, w, t):
    return {
        "matmul": lambda: x @ w, "linear": lambda: F.linear(x, w),
        "sdpa": lambda: F.scaled_dot_product_attention(x[None], x[None], x[None], is_causal=True),
        "layer_norm": lambda: F.layer_norm(x, (8,)), "softmax": lambda: F.softmax(x, -1),
        "log_softmax": lambda: F.log_softmax(x, -1), "cross_entropy": lambda: F.cross_entropy(x, t),
        "sum": lambda: x.sum(), "mean": lambda: x.mean(dim=0),
        "add_f32": lambda: x + cgad.ones(8, device=x.device), "gelu": lambda: F.gelu(x, approximate="tanh"),
        "exp": lambda: x.exp(), "mul_scalar": lambda: x * 2.0,
    }[name]()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(OP_TABLE))
def test_op_table(name, device):
    rng = np.random.default_rng(0)
    t = cgad.tensor(rng.integers(0, 8, 4), device=device)
    for i, in_dtype in enumerate((f32, bf16)):
        x = cgad.tensor(rng.standard_normal((4, 8)), dtype=in_dtype, device=device)
        w = cgad.tensor(rng.standard_normal((8, 8)), dtype=in_dtype, device=device)
        with cgad.autocast(device, dtype=cgad.bfloat16):
            out = run_op(name, x, w, t)
        assert out.dtype == OP_TABLE[name][i], (name, in_dtype, out.dtype)
        outside = run_op(name, x, w, t)  # outside the region every op keeps its input's dtype
        assert outside.dtype == (in_dtype if name != "add_f32" else f32)


def test_region_restores_nests_and_disables():
    x = cgad.randn(4, 4)
    assert (x @ x).dtype == f32
    with cgad.autocast("cpu"):
        assert (x @ x).dtype == bf16
        with cgad.autocast("cpu", enabled=False):
            assert (x @ x).dtype == f32
            with cgad.autocast("cpu", dtype=cgad.bfloat16):
                assert (x @ x).dtype == bf16
            assert (x @ x).dtype == f32
        assert (x @ x).dtype == bf16
    assert (x @ x).dtype == f32
    with pytest.raises(ZeroDivisionError):
        with cgad.autocast("cpu"):
            1 / 0
    assert (x @ x).dtype == f32 and cgad._C.autocast_cache_size() == 0
    with pytest.raises(ValueError, match="device_type"):
        cgad.autocast("tpu")
    with pytest.raises(TypeError, match="bfloat16"):
        cgad.autocast("cpu", dtype=cgad.float64)


def test_decorator():
    @cgad.autocast("cpu", dtype=cgad.bfloat16)
    def f(a, b):
        return a @ b

    x = cgad.randn(3, 3)
    assert f(x, x).dtype == bf16 and (x @ x).dtype == f32


@pytest.mark.parametrize("device", DEVICES)
def test_parameters_cast_once_and_get_float32_grads(device):
    cgad.manual_seed(0)
    lin = nn.Linear(16, 16).to(device)
    x = cgad.randn(5, 16, device=device)
    with cgad.autocast(device):
        h = lin(lin(x))  # the same weight twice: one bf16 copy
        assert h.dtype == bf16
        assert cgad._C.autocast_cache_size() == 2  # weight and bias
        loss = h.float().pow(2.0).sum()
    assert cgad._C.autocast_cache_size() == 0  # dropped when the region ends
    loss.backward()
    for p in (lin.weight, lin.bias):
        assert p.dtype == f32 and p.grad.dtype == f32 and p.grad.device == device
    # the grads match float32 autodiff of the same bf16-rounded computation closely
    lin.zero_grad()
    (lin(lin(x)).pow(2.0).sum()).backward()
    g32 = lin.weight.grad.numpy().copy()
    lin.zero_grad()
    with cgad.autocast(device):
        loss = lin(lin(x)).float().pow(2.0).sum()
    loss.backward()
    assert nmax_err(lin.weight.grad.numpy(), g32) < 3e-2


@pytest.mark.parametrize("device", DEVICES)
def test_an_in_place_update_inside_the_region_refreshes_the_cached_copy(device):
    # an optimizer step (or any in-place write) inside one region: later uses see the new values
    lin = nn.Linear(4, 4, bias=False).to(device)
    x = cgad.ones(1, 4, device=device)
    with cgad.autocast(device):
        before = lin(x).float().numpy()
        with cgad.no_grad():
            lin.weight.copy_(lin.weight * 2.0)  # exact in bf16: the new copy is twice the old one
        after = lin(x).float().numpy()
    np.testing.assert_array_equal(after, 2 * before)


def test_no_grad_region_does_not_cache():
    lin = nn.Linear(4, 4)
    with cgad.no_grad(), cgad.autocast("cpu"):
        assert lin(cgad.randn(2, 4)).dtype == bf16 and cgad._C.autocast_cache_size() == 0


def test_against_torch_autocast():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w, b, w2 = (rng.standard_normal(s).astype(np.float32) for s in ((6, 10, 32), (48, 32), (48,), (48, 20)))
    t = rng.integers(0, 48, (6, 10))
    cw, cb = cgad.tensor(w, requires_grad=True), cgad.tensor(b, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    with cgad.autocast("cpu", dtype=cgad.bfloat16):
        h = F.linear(cgad.tensor(x), cw, cb)
        logits = h @ cgad.tensor(w2)
        cl = F.cross_entropy(logits, cgad.tensor(t % 20))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        th = torch.nn.functional.linear(torch.tensor(x), tw, tb)
        tlogits = th @ torch.tensor(w2)
        tl = torch.nn.functional.cross_entropy(tlogits.float().reshape(-1, 20), torch.tensor(t % 20).reshape(-1))
    assert h.dtype == bf16 and th.dtype == torch.bfloat16
    assert nmax_err(h.numpy(), th.float().detach().numpy()) <= 2 ** -8
    assert nmax_err(logits.numpy(), tlogits.float().detach().numpy()) <= 2 ** -7
    assert cl.dtype == f32 and abs(cl.item() - tl.item()) < 1e-2 * abs(tl.item())
    cl.backward()
    tl.backward()
    assert cw.grad.dtype == f32
    assert nmax_err(cw.grad.numpy(), tw.grad.numpy()) < 2e-2
    assert nmax_err(cb.grad.numpy(), tb.grad.numpy()) < 2e-2


def train_losses(autocast, steps, preset="tiny", vocab=65, B=4, T=32, seed=0):
    cgad.manual_seed(seed)
    model = GPT(GPTConfig.preset(preset, vocab_size=vocab, block_size=T))
    opt = model.configure_optimizers(0.1, 1e-3)
    data = np.random.default_rng(seed).integers(0, vocab, (B, T + 1))  # one batch, learnt by heart
    x, y = cgad.tensor(data[:, :-1]), cgad.tensor(data[:, 1:])
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with cgad.autocast("cpu", dtype=cgad.bfloat16, enabled=autocast):
            _, loss = model(x, y)
        assert loss.dtype == f32
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    for p in model.parameters():
        assert p.dtype == f32 and p.grad.dtype == f32
    return losses


def test_gpt_tiny_20_adamw_steps_track_float32():
    ref = train_losses(False, 20)
    got = train_losses(True, 20)
    assert all(math.isfinite(v) for v in got)
    worst = max(abs(a - b) for a, b in zip(got, ref))
    assert worst < 2e-2, (worst, got, ref)
    assert got[-1] < got[0] - 0.5
