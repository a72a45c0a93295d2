"""The fused nn ops: forward against numpy, float64 gradchecks, fp32 against float64, VJPs against torch."""
import math

import numpy as np
import pytest

import cgad
import cgad.nn.functional as F
from conftest import DEVICES, gradcheck, nmax_err, weighted_sum

rng = np.random.default_rng(2)


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_gelu(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / math.sqrt(2)))


def np_attention(q, k, v, causal, scale):
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        L, S = s.shape[-2:]
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    return np_softmax(s, -1) @ v


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_log_softmax(dim, device):
    a = rng.standard_normal((3, 4, 5)) * 3
    for f, ref in ((F.softmax, np_softmax(a, dim)), (F.log_softmax, np.log(np_softmax(a, dim)))):
        out = f(cgad.tensor(a, device=device), dim)
        assert out.device == device
        assert nmax_err(out.numpy(), ref) < 1e-12
    gradcheck(lambda x: weighted_sum(F.softmax(x, dim)), [a], device=device)
    gradcheck(lambda x: weighted_sum(F.log_softmax(x, dim)), [a], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_softmax_large_logits_stay_finite(device):
    out = cgad.tensor([[1000.0, 1000.0, -1000.0]], device=device).softmax(-1).numpy()
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]])
    assert np.isfinite(cgad.tensor([[1e4, 0.0]], device=device).log_softmax(-1).numpy()).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate, device):
    a = rng.standard_normal((4, 7)) * 2
    out = F.gelu(cgad.tensor(a, device=device), approximate)
    assert out.device == device
    assert nmax_err(out.numpy(), np_gelu(a, approximate)) < 1e-12
    gradcheck(lambda x: weighted_sum(F.gelu(x, approximate)), [a], device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(affine, device):
    x, w, b = rng.standard_normal((2, 3, 8)) * 2 + 1, rng.standard_normal(8), rng.standard_normal(8)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-5)
    if affine:
        ref = ref * w + b
        out = F.layer_norm(cgad.tensor(x, device=device), (8,), cgad.tensor(w, device=device),
                           cgad.tensor(b, device=device))
        gradcheck(lambda x_, w_, b_: weighted_sum(F.layer_norm(x_, (8,), w_, b_)), [x, w, b], device=device)
    else:
        out = F.layer_norm(cgad.tensor(x, device=device), (8,))
        gradcheck(lambda x_: weighted_sum(F.layer_norm(x_, (8,))), [x], device=device)
    assert out.device == device
    assert nmax_err(out.numpy(), ref) < 1e-12


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("id_dtype", [cgad.int64, cgad.int32])
def test_embedding(id_dtype, device):
    w = rng.standard_normal((10, 4))
    idx = np.array([[1, 3, 3], [9, 0, 1]])
    ids = cgad.tensor(idx, dtype=id_dtype, device=device)
    out = F.embedding(ids, cgad.tensor(w, device=device))
    assert out.device == device
    assert nmax_err(out.numpy(), w[idx]) == 0
    gradcheck(lambda w_: weighted_sum(F.embedding(ids, w_)), [w], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_embedding_index_out_of_range(device):
    w = cgad.zeros(10, 4, device=device)
    for bad in (10, -1):
        with pytest.raises(IndexError, match=f"embedding: index {bad} is out of range for a table of 10 rows "
                                             r"\(ids \(2, 2\)\)"):
            F.embedding(cgad.tensor([[1, 2], [bad, 0]], device=device), w)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 5)])
def test_cross_entropy(shape, device):
    logits = rng.standard_normal(shape) * 3
    targets = rng.integers(0, shape[-1], shape[:-1])
    flat, ft = logits.reshape(-1, shape[-1]), targets.reshape(-1)
    lse = np.log(np.exp(flat - flat.max(1, keepdims=True)).sum(1)) + flat.max(1)
    ref = (lse - flat[np.arange(ft.size), ft]).mean()  # mean over all B*T tokens, not B
    got = F.cross_entropy(cgad.tensor(logits, device=device), cgad.tensor(targets, device=device))
    assert got.shape == () and got.device == device
    assert abs(got.item() - ref) < 1e-12
    gradcheck(lambda x: F.cross_entropy(x, cgad.tensor(targets, device=device)), [logits], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_ignore_index_averages_over_kept_targets(device):
    logits = rng.standard_normal((2, 4, 6))
    targets = np.array([[1, -100, 2, 5], [-100, -100, 0, 3]])
    keep = targets != -100
    flat, ft = logits[keep], targets[keep]
    ref = (np.log(np.exp(flat).sum(1)) - flat[np.arange(ft.size), ft]).mean()
    tt = cgad.tensor(targets, dtype=cgad.int32, device=device)
    assert abs(F.cross_entropy(cgad.tensor(logits, device=device), tt).item() - ref) < 1e-12
    gradcheck(lambda x: F.cross_entropy(x, tt), [logits], device=device)
    every_ignored = cgad.tensor(np.full((2, 4), -100), device=device)
    assert np.isnan(F.cross_entropy(cgad.tensor(logits, device=device), every_ignored).item())


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_target_out_of_range(device):
    logits = cgad.zeros(2, 3, 5, device=device)
    with pytest.raises(IndexError, match=r"cross_entropy: target 5 is out of range for 5 classes \(logits \(2, 3, 5\)\)"):
        F.cross_entropy(logits, cgad.tensor([[0, 1, -100], [5, 0, 0]], device=device))


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_extreme_logits_finite(device):
    logits = cgad.tensor([[1e4, -1e4, 0.0]], device=device, requires_grad=True)
    loss = F.cross_entropy(logits, cgad.tensor([1], device=device))
    loss.backward()
    assert logits.grad.device == device
    assert abs(loss.item() - 2e4) < 1 and np.isfinite(logits.grad.numpy()).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal,L,S", [(False, 5, 5), (True, 5, 5), (True, 3, 6), (True, 6, 3), (False, 4, 7)])
def test_attention(causal, L, S, device):
    q, k, v = rng.standard_normal((2, 2, L, 4)), rng.standard_normal((2, 2, S, 4)), rng.standard_normal((2, 2, S, 3))
    out = F.scaled_dot_product_attention(*(cgad.tensor(a, device=device) for a in (q, k, v)), is_causal=causal)
    assert out.device == device
    assert nmax_err(out.numpy(), np_attention(q, k, v, causal, 0.5)) < 1e-12
    gradcheck(lambda a, b, c: weighted_sum(F.scaled_dot_product_attention(a, b, c, is_causal=causal, scale=0.3)),
              [q, k, v], device=device)


def test_attention_rejects_mixed_devices():
    cpu, dev = cgad.ones(1, 2, 3, 4), cgad.ones(1, 2, 3, 4, device="test")
    for qkv in ((cpu, dev, dev), (dev, cpu, dev), (dev, dev, cpu), (cpu, cpu, dev)):
        with pytest.raises(RuntimeError, match="same device"):
            F.scaled_dot_product_attention(*qkv)


def np_attention_vjp(q, k, v, g, causal, scale):
    """Hand-derived attention gradients (dq, dk, dv) in float64, independent of cgad."""
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        L, S = s.shape[-2:]
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    p = np_softmax(s, -1)
    dv = np.swapaxes(p, -1, -2) @ g
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    return scale * ds @ k, scale * np.swapaxes(ds, -1, -2) @ q, dv


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal,L,S,E,Ev", [(True, 70, 70, 64, 64), (True, 37, 75, 40, 33),
                                             (True, 75, 37, 16, 70), (False, 45, 67, 64, 24)])
def test_attention_across_tile_edges(causal, L, S, E, Ev, device):
    """Sizes that cross the micro GEMM's 6-row and 32-column tiles, in float64 and in float32."""
    q, k = rng.standard_normal((2, 3, L, E)), rng.standard_normal((2, 3, S, E))
    v, g = rng.standard_normal((2, 3, S, Ev)), rng.standard_normal((2, 3, L, Ev))
    ref = np_attention(q, k, v, causal, 0.2)
    ref_grads = np_attention_vjp(q, k, v, g, causal, 0.2)
    for dtype, tol in ((cgad.float64, 1e-12), (cgad.float32, 1e-5)):
        ts = [cgad.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ts, is_causal=causal, scale=0.2)
        out.backward(cgad.tensor(g, dtype=dtype, device=device))
        assert out.device == device
        assert nmax_err(out.numpy(), ref) < tol
        for t, r in zip(ts, ref_grads):
            assert t.grad.device == device
            assert nmax_err(t.grad.numpy(), r) < tol * 10


@pytest.mark.parametrize("device", DEVICES)
def test_attention_reads_strided_views_in_place(device):
    """q, k, v as GPT-2 makes them (split of one (B, T, 3C) buffer, viewed and transposed), a
    last dim with stride 2, and a transposed upstream grad: values and grads as contiguous."""
    B, T, NH, HS = 2, 13, 3, 8
    qkv_np, g_np = rng.standard_normal((B, T, 3 * NH * HS)), rng.standard_normal((B, T, NH, HS))
    qkv = cgad.tensor(qkv_np, device=device, requires_grad=True)
    q, k, v = (t.reshape(B, T, NH, HS).transpose(1, 2) for t in qkv.split(NH * HS, dim=2))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    y = out.transpose(1, 2).contiguous()
    y.backward(cgad.tensor(g_np, device=device))
    assert y.device == device and qkv.grad.device == device
    qn, kn, vn = (a.reshape(B, T, NH, HS).transpose(0, 2, 1, 3) for a in np.split(qkv_np, 3, axis=2))
    scale = 1 / math.sqrt(HS)
    assert nmax_err(y.numpy(), np_attention(qn, kn, vn, True, scale).transpose(0, 2, 1, 3)) < 1e-12
    grads = np_attention_vjp(qn, kn, vn, g_np.transpose(0, 2, 1, 3), True, scale)
    ref = np.concatenate([gr.transpose(0, 2, 1, 3).reshape(B, T, NH * HS) for gr in grads], axis=2)
    assert nmax_err(qkv.grad.numpy(), ref) < 1e-12
    wide = rng.standard_normal((2, 2, 7, 10))
    t = cgad.tensor(wide, device=device)[..., ::2]  # last dim stride 2: copied, same answer
    out = F.scaled_dot_product_attention(t, t, t)
    assert out.device == device
    narrow = wide[..., ::2]
    assert nmax_err(out.numpy(), np_attention(narrow, narrow, narrow, False, 1 / math.sqrt(5))) < 1e-12


@pytest.mark.parametrize("device", DEVICES)
def test_dropout(device):
    x = cgad.ones(1000, 100, device=device)
    out = F.dropout(x, 0.25)
    assert out.device == device
    y = out.numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert F.dropout(x, 0.25, training=False) is not None
    np.testing.assert_array_equal(F.dropout(x, 0.25, training=False).numpy(), x.numpy())
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((1000, 100), np.float32))
    a = rng.standard_normal((5, 6))
    cgad.manual_seed(3)
    mask = (F.dropout(cgad.ones(5, 6, dtype=cgad.float64, device=device), 0.4).numpy() != 0)

    def f(t):
        cgad.manual_seed(3)
        return weighted_sum(F.dropout(t, 0.4))
    gradcheck(f, [a], device=device)
    cgad.manual_seed(3)
    t = cgad.tensor(a, device=device, requires_grad=True)
    F.dropout(t, 0.4).sum().backward()
    assert t.grad.device == device
    np.testing.assert_allclose(t.grad.numpy(), mask / 0.6)


def test_dropout_mask_is_the_same_on_every_device():
    """One seed, one Philox stream: the mask does not depend on the device it is drawn on."""
    masks = []
    for device in DEVICES:
        cgad.manual_seed(11)
        masks.append(F.dropout(cgad.ones(37, 29, device=device), 0.5).numpy())
    for m in masks[1:]:
        np.testing.assert_array_equal(m, masks[0])


def test_nn_ops_devices_do_not_mix():
    cpu, dev = cgad.ones(2, 4), cgad.ones(2, 4, device="test")
    w_cpu, w_dev = cgad.ones(4), cgad.ones(4, device="test")
    ids_cpu, ids_dev = cgad.tensor([[0, 1]]), cgad.tensor([[0, 1]], device="test")
    cases = [
        lambda: F.layer_norm(dev, (4,), w_cpu, w_dev),
        lambda: F.layer_norm(dev, (4,), w_dev, w_cpu),
        lambda: F.layer_norm(cpu, (4,), w_dev),
        lambda: F.embedding(ids_cpu, cgad.ones(3, 4, device="test")),
        lambda: F.embedding(ids_dev, cgad.ones(3, 4)),
        lambda: F.cross_entropy(cpu, cgad.tensor([0, 1], device="test")),
        lambda: F.cross_entropy(dev, cgad.tensor([0, 1])),
    ]
    for f in cases:
        with pytest.raises(RuntimeError,
                           match="expected all tensors on the same device, got (cpu and test|test and cpu)"):
            f()


def test_nn_ops_on_test_keep_no_cpu_buffers():
    """Outputs, saved statistics and grads of the nn ops all live on "test": a forward and
    backward there leaves the CPU's allocated bytes where they were, at every point."""
    x = cgad.tensor(rng.standard_normal((3, 4, 16)), dtype=cgad.float32, device="test", requires_grad=True)
    w = cgad.tensor(rng.standard_normal(16), dtype=cgad.float32, device="test", requires_grad=True)
    table = cgad.tensor(rng.standard_normal((16, 16)), dtype=cgad.float32, device="test", requires_grad=True)
    targets = cgad.tensor(rng.integers(0, 16, (3, 4)), device="test")
    before = cgad.memory_stats("cpu")["allocated_bytes"]
    h = F.gelu(F.layer_norm(x, (16,), w, w), "tanh")
    h = F.dropout(F.softmax(h, -1) + F.log_softmax(h, 1), 0.1)
    loss = F.cross_entropy(h + F.embedding(targets, table), targets)
    assert cgad.memory_stats("cpu")["allocated_bytes"] == before
    loss.backward()
    assert cgad.memory_stats("cpu")["allocated_bytes"] == before
    assert all(t.grad.device == "test" for t in (x, w, table))


FP32_CASES = {
    "softmax": lambda x: F.softmax(x, -1),
    "log_softmax": lambda x: F.log_softmax(x, -1),
    "gelu": lambda x: F.gelu(x, "tanh"),
    "layer_norm": lambda x: F.layer_norm(x, (x.shape[-1],)),
    "attention": lambda x: F.scaled_dot_product_attention(x, x * 0.5, x, is_causal=True),
    "cross_entropy": lambda x: F.cross_entropy(x.reshape(-1, x.shape[-1]), cgad.tensor(np.arange(x.numel() // x.shape[-1]) % x.shape[-1], device=x.device)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(FP32_CASES))
def test_fp32_kernel_matches_float64_path(name, device):
    a = rng.standard_normal((2, 3, 16, 32))
    outs, grads = [], []
    for dt in (cgad.float32, cgad.float64):
        t = cgad.tensor(a, dtype=dt, device=device, requires_grad=True)
        y = FP32_CASES[name](t)
        weighted_sum(y).backward()
        outs.append(y.numpy())
        grads.append(t.grad.numpy())
    assert nmax_err(outs[0], outs[1]) < 1e-5
    assert nmax_err(grads[0], grads[1]) < 1e-4


@pytest.mark.parametrize("device", DEVICES)
def test_vjps_match_torch(torch, device):
    tf = torch.nn.functional
    x = rng.standard_normal((2, 4, 6, 8)).astype(np.float32)
    w, b = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    g = rng.standard_normal((2, 4, 6, 8)).astype(np.float32)
    cases = {
        "gelu_tanh": (lambda t, W, B: F.gelu(t, "tanh"), lambda t, W, B: tf.gelu(t, approximate="tanh")),
        "gelu": (lambda t, W, B: F.gelu(t), lambda t, W, B: tf.gelu(t)),
        "layer_norm": (lambda t, W, B: F.layer_norm(t, (8,), W, B), lambda t, W, B: tf.layer_norm(t, (8,), W, B)),
        "softmax": (lambda t, W, B: F.softmax(t, 2), lambda t, W, B: tf.softmax(t, 2)),
        "log_softmax": (lambda t, W, B: F.log_softmax(t, -1), lambda t, W, B: tf.log_softmax(t, -1)),
        "sdpa": (lambda t, W, B: F.scaled_dot_product_attention(t, t * W, t + B, is_causal=True),
                 lambda t, W, B: tf.scaled_dot_product_attention(t, t * W, t + B, is_causal=True)),
        "linear": (lambda t, W, B: F.linear(t, W.reshape(1, 8).expand(8, 8) * 1.0, B),
                   lambda t, W, B: tf.linear(t, W.reshape(1, 8).expand(8, 8), B)),
    }
    for name, (ours, ref) in cases.items():
        ct = [cgad.tensor(a, device=device, requires_grad=True) for a in (x, w, b)]
        tt = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        yo, yt = ours(*ct), ref(*tt)
        assert yo.device == device, name
        yo.backward(cgad.tensor(g, device=device))
        yt.backward(torch.tensor(g))
        assert nmax_err(yo.numpy(), yt.detach().numpy()) < 1e-5, name
        for c, t in zip(ct, tt):
            if t.grad is not None:
                assert nmax_err(c.grad.numpy(), t.grad.numpy()) < 1e-5, name


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_and_embedding_match_torch(torch, device):
    logits = rng.standard_normal((3, 5, 11)).astype(np.float32)
    targets = rng.integers(0, 11, (3, 5))
    targets[0, 1] = -100
    c = cgad.tensor(logits, device=device, requires_grad=True)
    t = torch.tensor(logits, requires_grad=True)
    lc = F.cross_entropy(c, cgad.tensor(targets, device=device))
    lt = torch.nn.functional.cross_entropy(t.reshape(-1, 11), torch.tensor(targets).reshape(-1), ignore_index=-100)
    lc.backward()
    lt.backward()
    assert abs(lc.item() - lt.item()) < 1e-6
    assert c.grad.device == device
    assert nmax_err(c.grad.numpy(), t.grad.numpy()) < 1e-6
    w = rng.standard_normal((11, 4)).astype(np.float32)
    cw, tw = cgad.tensor(w, device=device, requires_grad=True), torch.tensor(w, requires_grad=True)
    g = rng.standard_normal((3, 5, 4)).astype(np.float32)
    F.embedding(cgad.tensor(np.maximum(targets, 0), device=device), cw).backward(cgad.tensor(g, device=device))
    torch.nn.functional.embedding(torch.tensor(np.maximum(targets, 0)), tw).backward(torch.tensor(g))
    assert cw.grad.device == device
    assert nmax_err(cw.grad.numpy(), tw.grad.numpy()) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_grad_when_logits_buffer_is_reused(device):
    """Logits nobody else holds are overwritten by their grad in backward; held logits, and a
    retained graph run twice, keep their values, and every path gives the same grad."""
    a = rng.standard_normal((4, 6, 9)).astype(np.float32)
    targets = cgad.tensor(rng.integers(0, 9, (4, 6)), device=device)
    w = cgad.tensor(rng.standard_normal(9).astype(np.float32), device=device)

    def grad(keep_logits, retain=False):
        x = cgad.tensor(a, device=device, requires_grad=True)
        logits = x * w  # a non-leaf, so only the graph holds it once dropped
        loss = F.cross_entropy(logits, targets)
        held = logits if keep_logits else None
        del logits
        loss.backward(retain_graph=retain)
        if retain:
            loss.backward()
        if held is not None:
            np.testing.assert_array_equal(held.numpy(), (cgad.tensor(a, device=device) * w).numpy())
        assert x.grad.device == device
        return x.grad.numpy() / (2 if retain else 1)
    ref = grad(True)
    np.testing.assert_array_equal(grad(False), ref)
    np.testing.assert_allclose(grad(False, retain=True), ref, rtol=1e-6, atol=1e-7)
