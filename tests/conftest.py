"""Shared test helpers: normalized max error, float64 central differences, torch when present."""
import numpy as np
import pytest

import cgad


def nmax_err(a, b):
    """max|a - b| / max|b| (DESIGN.md habit 3), 0 for two empty or all-zero arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(a - b))
    return float(diff / scale) if scale > 0 else float(diff)


# Device-parametrized tests run on the CPU and on "test", the CPU-backed second device whose
# memory only kernels may read: passing there means an op keeps its device, as it must on a GPU.
DEVICES = ("cpu", "test")


def numeric_grads(f, arrays, eps=1e-6, device="cpu"):
    """Central-difference gradients of the scalar f(*tensors) w.r.t. each float64 array."""
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        flat = a.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            hi = f(*[cgad.tensor(x, device=device) for x in arrays]).item()
            flat[i] = orig - eps
            lo = f(*[cgad.tensor(x, device=device) for x in arrays]).item()
            flat[i] = orig
            g.reshape(-1)[i] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def gradcheck(f, arrays, tol=1e-6, eps=1e-6, device="cpu"):
    """Asserts autograd's gradients of the scalar f equal central differences, all in float64,
    with the inputs (and so every intermediate and grad) on `device`."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    ts = [cgad.tensor(a, device=device, requires_grad=True) for a in arrays]
    out = f(*ts)
    assert out.dtype == cgad.float64 and out.device == device
    out.backward()
    num = numeric_grads(f, arrays, eps, device)
    for t, n in zip(ts, num):
        assert t.grad is not None and t.grad.device == device
        assert nmax_err(t.grad.numpy(), n) < tol, (t.grad.numpy(), n)


def weighted_sum(y, seed=0):
    """A scalar from any output with a fixed random weight per element, so every element's grad counts."""
    w = np.random.default_rng(seed).standard_normal(tuple(y.shape))
    return (y * cgad.tensor(w, dtype=y.dtype, device=y.device)).sum()


# The sanitizer stage of .ci/run runs `-m sanitize` against an ASan+UBSan build of _C: every test
# but the command-line runs (minutes of subprocesses under ASan), the memory figures (ASan's own
# quarantine grows the RSS), the source scan (no C++ in it) and the mpiexec runs (MPICH's launcher
# and ranks would inherit the preloaded ASan runtime).
NOT_SANITIZED = {"test_train_cli", "test_memory_flat", "test_no_pickle", "test_distributed"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] not in NOT_SANITIZED:
            item.add_marker(pytest.mark.sanitize)


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _seed():
    cgad.manual_seed(0)
    yield
