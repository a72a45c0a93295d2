"""Elementwise ops: forward against numpy (with broadcasting and dtype promotion), float64 gradchecks."""
import numpy as np
import pytest

import cgad
from conftest import DEVICES, gradcheck, nmax_err, weighted_sum

rng = np.random.default_rng(0)
SHAPES = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((), (2, 3)), ((0, 3), (3,))]
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_binary_forward(name, sa, sb, device):
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32) + 3.0
    op, ref = BINARY[name]
    out = op(cgad.tensor(a, device=device), cgad.tensor(b, device=device))
    assert out.shape == np.broadcast_shapes(sa, sb) and out.device == device
    assert nmax_err(out.numpy(), ref(a, b)) < 1e-6


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize("sa,sb", SHAPES[:4])
def test_binary_grad(name, sa, sb, device):
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb) + 3.0
    op = BINARY[name][0]
    gradcheck(lambda x, y: weighted_sum(op(x, y)), [a, b], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_pow_forward_and_grad(device):
    a = rng.uniform(0.5, 2.0, (3, 4))
    b = rng.uniform(-1.0, 2.0, (3, 4))
    ta, tb = cgad.tensor(a, device=device), cgad.tensor(b, device=device)
    assert nmax_err((ta ** tb).numpy(), a ** b) < 1e-12
    assert nmax_err((ta ** 2).numpy(), a ** 2) < 1e-12
    gradcheck(lambda x, y: weighted_sum(x ** y), [a, b], device=device)
    gradcheck(lambda x: weighted_sum(x ** 3), [a], device=device)


UNARY = {
    "neg": (lambda t: -t, np.negative, (-2, 2)),
    "abs": (lambda t: t.abs(), np.abs, (-2, 2)),
    "exp": (lambda t: t.exp(), np.exp, (-2, 2)),
    "log": (lambda t: t.log(), np.log, (0.5, 3)),
    "tanh": (lambda t: t.tanh(), np.tanh, (-2, 2)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, (0.5, 3)),
    "rsqrt": (lambda t: t.rsqrt(), lambda x: 1 / np.sqrt(x), (0.5, 3)),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, device):
    op, ref, (lo, hi) = UNARY[name]
    a = rng.uniform(lo, hi, (4, 5))
    if name == "abs":
        a[np.abs(a) < 0.1] = 0.5  # keep central differences away from the kink
    out = op(cgad.tensor(a.astype(np.float32), device=device))
    assert out.device == device and nmax_err(out.numpy(), ref(a.astype(np.float32))) < 1e-6
    gradcheck(lambda x: weighted_sum(op(x)), [a], device=device)


def test_fp32_matches_float64_path():
    a = rng.standard_normal((64, 33))
    b = rng.standard_normal((33,))
    f = lambda x, y: ((x * y).exp() / (x.abs() + 1.0)).tanh()  # noqa: E731
    out32 = f(cgad.tensor(a, dtype=cgad.float32), cgad.tensor(b, dtype=cgad.float32)).numpy()
    out64 = f(cgad.tensor(a), cgad.tensor(b)).numpy()
    assert nmax_err(out32, out64) < 1e-6


@pytest.mark.parametrize("lhs,rhs,expected", [
    (cgad.float32, 2.5, cgad.float32),
    (cgad.int64, 2, cgad.int64),
    (cgad.int64, 2.5, cgad.float32),
    (cgad.bool, 1, cgad.int64),
    (cgad.int32, 7, cgad.int32),
])
def test_scalar_promotion(lhs, rhs, expected):
    t = cgad.ones(3, dtype=lhs)
    assert (t * rhs).dtype == expected
    assert (rhs + t).dtype == expected


def test_tensor_promotion_and_true_division():
    f32, f64, i64 = cgad.ones(2), cgad.ones(2, dtype=cgad.float64), cgad.ones(2, dtype=cgad.int64)
    assert (f32 * f64).dtype == cgad.float64
    assert (i64 / i64).dtype == cgad.float32
    assert (i64 + f32).dtype == cgad.float32
    np.testing.assert_array_equal((cgad.tensor([7, -7]) / 2).numpy(), np.array([3.5, -3.5], np.float32))


@pytest.mark.parametrize("device", DEVICES)
def test_compare_and_masked_fill(device):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    t = cgad.tensor(a, device=device)
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        got = getattr(t, op)(0.0)
        assert got.dtype == cgad.bool and got.device == device
        np.testing.assert_array_equal(got.numpy(), getattr(a, op)(0.0))
    mask = cgad.tensor(np.array([True, False, True, False]), device=device)
    np.testing.assert_array_equal(t.masked_fill(mask, -1.0).numpy(), np.where(mask.numpy(), -1.0, a))
    x = rng.standard_normal((3, 4))
    gradcheck(lambda y: weighted_sum(y.masked_fill(mask, 0.0)), [x], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_where_grad(device):
    c = cgad.tensor(rng.standard_normal((3, 4)) > 0, device=device)
    gradcheck(lambda a, b: weighted_sum(cgad.where(c, a, b)), [rng.standard_normal((3, 4)), rng.standard_normal((4,))],
              device=device)


def test_devices_do_not_mix():
    a, b = cgad.ones(3), cgad.ones(3, device="test")
    for f in (lambda: a + b, lambda: b * a, lambda: a == b, lambda: cgad.where(a > 0, a, b)):
        with pytest.raises(RuntimeError, match="expected all tensors on the same device, got (cpu and test|test and cpu)"):
            f()


def test_test_device_has_its_own_memory():
    cgad.empty_cache("test")
    before_cpu = cgad.memory_stats("cpu")["allocated_bytes"]
    x = cgad.ones(1000, device="test")
    y = (x * 2.0 + x).exp()
    assert cgad.memory_stats("test")["allocated_bytes"] >= 2 * 4000
    assert cgad.memory_stats("cpu")["allocated_bytes"] == before_cpu
    assert str(y.device) == "test" and y.device == cgad.device("test") and y.device != "cpu"
    np.testing.assert_allclose(y.numpy(), np.full(1000, np.exp(3.0), np.float32), rtol=1e-6)
