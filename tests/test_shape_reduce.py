"""Views, shape ops, reductions and matmul: forward against numpy, float64 gradchecks."""
import numpy as np
import pytest

import cgad
from conftest import DEVICES, gradcheck, nmax_err, weighted_sum

rng = np.random.default_rng(1)


def test_views_forward_match_numpy():
    a = rng.standard_normal((2, 3, 4))
    t = cgad.tensor(a)
    np.testing.assert_array_equal(t.reshape(6, 4).numpy(), a.reshape(6, 4))
    np.testing.assert_array_equal(t.view(-1).numpy(), a.reshape(-1))
    np.testing.assert_array_equal(t.transpose(0, 2).numpy(), a.transpose(2, 1, 0))
    np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), a.transpose(1, 2, 0))
    np.testing.assert_array_equal(t.unsqueeze(1).numpy(), a[:, None])
    np.testing.assert_array_equal(t[:, None].squeeze(1).numpy(), a)
    np.testing.assert_array_equal(t[1, :, 1:3].numpy(), a[1, :, 1:3])
    np.testing.assert_array_equal(t[..., ::2].numpy(), a[..., ::2])
    np.testing.assert_array_equal(t[-1].numpy(), a[-1])
    np.testing.assert_array_equal(t[:1].expand(5, 3, 4).numpy(), np.broadcast_to(a[:1], (5, 3, 4)))
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    pieces = t.split(2, dim=2)
    assert [p.shape for p in pieces] == [(2, 3, 2), (2, 3, 2)]
    np.testing.assert_array_equal(t.split([1, 2], dim=1)[1].numpy(), a[:, 1:])
    np.testing.assert_array_equal(cgad.cat([t, t], 1).numpy(), np.concatenate([a, a], 1))
    np.testing.assert_array_equal(cgad.stack([t, t], 0).numpy(), np.stack([a, a], 0))
    assert [c.shape[0] for c in cgad.arange(10).chunk(3)] == [4, 4, 2]


def test_view_of_noncontiguous_raises_but_reshape_copies():
    t = cgad.tensor(rng.standard_normal((3, 4))).transpose(0, 1)
    with pytest.raises(RuntimeError, match="view"):
        t.view(12)
    np.testing.assert_array_equal(t.reshape(12).numpy(), t.numpy().reshape(12))


SHAPE_FNS = {
    "reshape": lambda x: x.reshape(3, 8),
    "transpose": lambda x: x.transpose(0, 2).contiguous(),
    "permute": lambda x: x.permute(2, 0, 1),
    "index": lambda x: x[1:, ::2, None, 1],
    "split": lambda x: x.split(2, dim=2)[1] * x.split(2, dim=2)[0],
    "cat": lambda x: cgad.cat([x, x * 2.0], dim=1),
    "stack": lambda x: cgad.stack([x, x.exp()], dim=0),
    "expand": lambda x: x[:, :1].expand(2, 5, 4),
    "squeeze": lambda x: x[:, :1].squeeze(1).unsqueeze(0),
}


@pytest.mark.parametrize("name", list(SHAPE_FNS))
def test_shape_op_grads(name):
    gradcheck(lambda x: weighted_sum(SHAPE_FNS[name](x)), [rng.standard_normal((2, 3, 4))])


@pytest.mark.parametrize("dim,keepdim", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
def test_sum_mean(dim, keepdim):
    a = rng.standard_normal((3, 4, 5))
    t = cgad.tensor(a)
    npdim = dim if dim is None else (tuple(dim) if isinstance(dim, tuple) else dim)
    assert nmax_err(t.sum(dim, keepdim).numpy(), a.sum(axis=npdim, keepdims=keepdim)) < 1e-12
    assert nmax_err(t.mean(dim, keepdim).numpy(), a.mean(axis=npdim, keepdims=keepdim)) < 1e-12
    gradcheck(lambda x: weighted_sum(x.sum(dim, keepdim)), [a])
    gradcheck(lambda x: weighted_sum(x.mean(dim, keepdim)), [a])


def test_max_argmax_topk():
    a = rng.standard_normal((4, 6))
    t = cgad.tensor(a)
    assert t.max().item() == a.max()
    v, i = t.max(1)
    np.testing.assert_array_equal(v.numpy(), a.max(1))
    np.testing.assert_array_equal(i.numpy(), a.argmax(1))
    assert t.argmax().item() == a.argmax()
    np.testing.assert_array_equal(t.argmax(0, keepdim=True).numpy(), a.argmax(0)[None])
    tv, ti = t.topk(3)
    np.testing.assert_array_equal(ti.numpy(), np.argsort(-a, axis=1)[:, :3])
    np.testing.assert_array_equal(tv.numpy(), -np.sort(-a, axis=1)[:, :3])
    gradcheck(lambda x: weighted_sum(x.max(1)[0]), [a])
    gradcheck(lambda x: x.max() * 3.0, [a])


def test_backward_through_topk_raises():
    t = cgad.randn(5, requires_grad=True)
    with pytest.raises(RuntimeError, match="topk"):
        t.topk(2)[0].sum().backward()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
                                   ((4,), (4, 5)), ((3, 4), (4,)), ((1, 3, 4), (2, 4, 2)), ((3, 0), (0, 2))])
def test_matmul(sa, sb, device):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    out = cgad.tensor(a, device=device) @ cgad.tensor(b, device=device)
    assert out.device == device
    assert nmax_err(out.numpy(), a @ b) < 1e-12
    out32 = cgad.tensor(a, dtype=cgad.float32, device=device) @ cgad.tensor(b, dtype=cgad.float32, device=device)
    assert nmax_err(out32.numpy(), a @ b) < 1e-5
    if 0 not in sa:
        gradcheck(lambda x, y: weighted_sum(x @ y), [a, b], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_transposed_operands(device):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 5))
    gradcheck(lambda x, y: weighted_sum(x.transpose(0, 1) @ y.transpose(0, 1)), [a, b], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_linear(device):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    F = cgad.nn.functional
    tx, tw, tb = (cgad.tensor(a, device=device) for a in (x, w, b))
    for out, ref in ((F.linear(tx, tw, tb), x @ w.T + b), (F.linear(tx, tw), x @ w.T)):
        assert out.device == device
        assert nmax_err(out.numpy(), ref) < 1e-12
    gradcheck(lambda x_, w_, b_: weighted_sum(F.linear(x_, w_, b_)), [x, w, b], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_of_expanded_operands(device):
    """Matrices with zero strides (expanded scalars) are copied to a layout BLAS accepts."""
    b = rng.standard_normal((1, 6))
    tb = cgad.tensor(b, device=device)
    one = cgad.tensor(2.0, dtype=cgad.float64, device=device).expand(1, 1)
    batch = cgad.tensor(3.0, dtype=cgad.float64, device=device).expand(4, 1, 1)
    assert nmax_err((one @ tb).numpy(), 2 * b) < 1e-12
    assert nmax_err((batch @ tb).numpy(), np.broadcast_to(3 * b, (4, 1, 6))) < 1e-12
    assert nmax_err((tb.transpose(0, 1) @ one).numpy(), 2 * b.T) < 1e-12


def test_matmul_and_linear_reject_mixed_devices():
    F = cgad.nn.functional
    cpu, dev = cgad.ones(3, 4), cgad.ones(3, 4, device="test")
    w, wt, b, bt = cgad.ones(2, 4), cgad.ones(2, 4, device="test"), cgad.ones(2), cgad.ones(2, device="test")
    for f in (lambda: cpu @ dev.transpose(0, 1), lambda: dev @ cpu.transpose(0, 1), lambda: F.linear(cpu, wt, b),
              lambda: F.linear(dev, w, bt), lambda: F.linear(dev, wt, b), lambda: F.linear(cpu, w, bt)):
        with pytest.raises(RuntimeError, match="same device"):
            f()


def test_grads_of_overlapping_views_and_direct_uses_sum():
    """The engine adds view grads (slices, split pieces, select) into one buffer per tensor:
    overlapping slices, unused pieces, a direct use besides the views, and a strided slice."""
    a = np.random.default_rng(5).standard_normal((6, 8))
    w = np.random.default_rng(6).standard_normal((6, 8))
    x = cgad.tensor(a, requires_grad=True)
    p0, p1, p2 = x.split([2, 3, 3], dim=1)  # p2 unused
    loss = (p0 * 2).sum() + (p1 * cgad.tensor(w[:, 2:5])).sum() + x[1:4].sum() + x[2:5].sum() \
        + (x * cgad.tensor(w)).sum() + x[::2, 1].sum() + x[3].sum()
    loss.backward()
    ref = w.copy()
    ref[:, :2] += 2
    ref[:, 2:5] += w[:, 2:5]
    ref[1:4] += 1
    ref[2:5] += 1
    ref[::2, 1] += 1
    ref[3] += 1
    np.testing.assert_allclose(x.grad.numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m,n", [(301, 67), (67, 301)])  # tall and wide: split by rows, by columns
def test_large_matmul_split_across_threads(ta, tb, m, n, device):
    """GEMMs big enough to be split across threads, with every transpose, in both dtypes."""
    k = 45
    a = rng.standard_normal((k, m) if ta else (m, k))
    b = rng.standard_normal((n, k) if tb else (k, n))
    ref = (a.T if ta else a) @ (b.T if tb else b)
    for dtype, tol in ((cgad.float64, 1e-12), (cgad.float32, 1e-5)):
        x, y = cgad.tensor(a, dtype=dtype, device=device), cgad.tensor(b, dtype=dtype, device=device)
        out = (x.transpose(0, 1) if ta else x) @ (y.transpose(0, 1) if tb else y)
        assert out.device == device
        assert nmax_err(out.numpy(), ref) < tol
    g = rng.standard_normal((m, n))
    x, w, bias = (cgad.tensor(v, device=device, requires_grad=True) for v in (a.T if ta else a, b if tb else b.T, g[0]))
    cgad.nn.functional.linear(x, w, bias).backward(cgad.tensor(g, device=device))
    xa, wa = (a.T if ta else a), (b if tb else b.T)
    assert all(t.grad.device == device for t in (x, w, bias))
    assert nmax_err(x.grad.numpy(), g @ wa) < 1e-12
    assert nmax_err(w.grad.numpy(), g.T @ xa) < 1e-12
    assert nmax_err(bias.grad.numpy(), g.sum(0)) < 1e-12
