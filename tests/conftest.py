"""Shared test helpers: normalized max error, float64 central differences, torch when present,
the offline data folder."""
import os

import numpy as np
import pytest

import cgad
from cli_helpers import SMALL, run


def nmax_err(a, b):
    """Normalized max error max|a - b| / max|b|, 0 for two empty or all-zero arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if a.size == 0:
        return 0.0
    scale = np.max(np.abs(b))
    diff = np.max(np.abs(a - b))
    return float(diff / scale) if scale > 0 else float(diff)


# Device-parametrized tests run on the CPU and on "test", the CPU-backed second device whose
# memory only kernels may read: passing there means an op keeps its device, as it must on a GPU;
# and on "cuda" where cgad was built with CUDA and a GPU is present (bench/gpu_check.sh).
DEVICES = ("cpu", "test") + (("cuda",) if cgad.cuda.is_available() else ())


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
NOT_SANITIZED = {"test_train_cli", "test_run_folder", "test_signals", "test_memory_flat",
                 "test_no_pickle", "test_distributed", "test_sample_cli"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_DATA_ENV = "CGAD_TEST_DATA"


def shared_data(*parts):
    """A path in the offline test data (tinyshakespeare/, gpt2/ with GPT-2's vocab files,
    tinystories/): under $CGAD_TEST_DATA, else a shared/data folder inside or beside the
    checkout. Tests that need it skip when it is absent."""
    candidates = [os.environ.get(TEST_DATA_ENV)] if os.environ.get(TEST_DATA_ENV) else \
        [os.path.join(ROOT, "shared", "data"), os.path.join(ROOT, "..", "shared", "data")]
    for base in candidates:
        if os.path.isdir(base):
            return os.path.join(base, *parts)
    return os.path.join(candidates[0], *parts)


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


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """The first 60,000 characters of Tiny Shakespeare, for the command-line tests."""
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    with open(os.path.join(ROOT, "python", "cgad", "datasets", "tinyshakespeare.txt")) as f:
        path.write_text(f.read()[:60_000])
    return str(path)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, text_file):
    """A 2-step run, finished, to copy and try things on."""
    out = str(tmp_path_factory.mktemp("finished") / "run")
    run("gpt2.py", "--data", text_file, "--tokenizer", "char", "--max-steps", "2",
        "--val-every", "2", "--out", out, *SMALL)
    return out
