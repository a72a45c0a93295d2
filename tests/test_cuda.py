"""The CUDA backend. Without a GPU: what the build reports, the clear errors of a missing CUDA,
the TF32 switch, CMake's CGAD_CUDA switch. With a GPU (bench/gpu_check.sh runs these): every op's
forward and VJP on "cuda" against the CPU (normalized max error <= 1e-4 in float32 with TF32 off),
the GPT parity fixtures, bf16 autocast training against float32, flat device memory over steps,
and host buffers freed while their async copies may still run."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import cgad
import cgad.nn.functional as F
from cgad.models.gpt import GPT, GPTConfig
from cli_helpers import SMALL, run
from conftest import ROOT, nmax_err, weighted_sum

gpu = pytest.mark.skipif(not cgad.cuda.is_available(), reason="needs a CUDA build of cgad and a GPU")
# bench/gpu_check.sh sets this: there the extension must have been built with CUDA.
EXPECT_CUDA = os.environ.get("CGAD_EXPECT_CUDA") == "1"
# .ci/sanitize preloads ASan into Python, and children (gpt2.py, cmake) would inherit it: like
# the other command-line tests (conftest's NOT_SANITIZED), those here do not run there.
subprocesses = pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                                  reason="child processes are not run under the preloaded sanitizer")


# --- without a GPU -----------------------------------------------------------------------------

def test_the_build_reports_cuda_as_configured():
    # CGAD_CUDA=AUTO means OFF until the backend has passed its GPU check, so a plain build has
    # no CUDA; gpu_check.sh builds with CGAD_CUDA=ON and says so.
    assert cgad._C.has_cuda is EXPECT_CUDA
    assert cgad.cuda.device_count() >= 0
    if not cgad._C.has_cuda:
        assert not cgad.cuda.is_available() and cgad.cuda.device_count() == 0
    assert cgad.cuda.is_available() == (cgad.cuda.device_count() > 0)


@pytest.mark.skipif(cgad.cuda.is_available(), reason="a GPU is present")
def test_cuda_absent_is_a_clear_runtime_error():
    x = cgad.ones(3)
    with pytest.raises(RuntimeError, match="cuda"):
        x.cuda()
    with pytest.raises(RuntimeError, match="cuda"):
        cgad.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        with cgad.autocast("cuda", dtype=cgad.bfloat16):
            pass
    with pytest.raises(RuntimeError, match="not available"):
        cgad.cuda.synchronize()
    with cgad.autocast("cuda", enabled=False):  # a disabled region needs no GPU, as in torch
        assert (x * 2).device == "cpu"
    if not cgad._C.has_cuda:
        with pytest.raises(RuntimeError, match="built without CUDA"):
            cgad.memory_stats("cuda")


def test_tf32_switch_is_off_by_default_and_settable():
    matmul = cgad.backends.cuda.matmul
    assert matmul.allow_tf32 is False
    try:
        matmul.allow_tf32 = True
        assert matmul.allow_tf32 is True
    finally:
        matmul.allow_tf32 = False
    assert cgad.cuda._index(None) == 0 and cgad.cuda._index("cuda:1") == 1 and cgad.cuda._index(2) == 2
    with pytest.raises(ValueError, match="CUDA device"):
        cgad.cuda._index("cpu")


@subprocesses
def test_tf32_flag_is_off_by_default_saved_and_kept_on_resume(tmp_path, text_file):
    base = ["--data", text_file, "--tokenizer", "char", "--threads", "1", "--num-samples", "0",
            "--val-every", "0", *SMALL]
    out = str(tmp_path / "tf32")
    first = run("gpt2.py", *base, "--max-steps", "1", "--tf32", "--out", out).stdout
    assert ", tf32 matmuls" in first
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["args"]["tf32"] is True
    assert ", tf32 matmuls" in run("gpt2.py", "--resume", "--out", out, "--max-steps", "2").stdout
    plain = str(tmp_path / "plain")
    assert "tf32 matmuls" not in run("gpt2.py", *base, "--max-steps", "1", "--out", plain).stdout
    with open(os.path.join(plain, "config.json")) as f:
        assert json.load(f)["args"]["tf32"] is False


def _configure(tmp_path, *defines):
    """CMake's configure step of this checkout with the given -D options (no BLAS, no tests:
    only the CUDA switch is looked at)."""
    pybind11 = pytest.importorskip("pybind11")
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    cmd = ["cmake", "-S", ROOT, "-B", str(tmp_path / "build"), "-DCGAD_BLAS=OFF", "-DCGAD_BUILD_TESTS=OFF",
           f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", *defines]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@subprocesses
def test_cmake_auto_builds_without_cuda_until_the_gpu_check_passes(tmp_path):
    r = _configure(tmp_path, "-DCGAD_CUDA=AUTO")
    assert r.returncode == 0, r.stderr
    assert "CUDA backend is experimental" in r.stdout
    assert "CUDA backend ON" not in r.stdout
    cache = (tmp_path / "build" / "CMakeCache.txt").read_text()
    assert "CGAD_CUDA:STRING=AUTO" in cache and "CMAKE_CUDA_COMPILER:" not in cache


@subprocesses
def test_cmake_rejects_an_unknown_cuda_mode(tmp_path):
    r = _configure(tmp_path, "-DCGAD_CUDA=maybe")
    assert r.returncode != 0
    assert "CGAD_CUDA must be OFF, ON or AUTO" in r.stderr


# --- on a GPU ----------------------------------------------------------------------------------

TOL = {"float32": 1e-4, "bfloat16": 1e-2}  # bf16: 8 mantissa bits, rounding order differs
RNG = np.random.default_rng(1234)
A = RNG.standard_normal((4, 6))
B = RNG.standard_normal((4, 6))
W = RNG.standard_normal((5, 6))
POS = np.abs(A) + 0.5
IDS = RNG.integers(0, 5, (4,))
QKV = RNG.standard_normal((3, 2, 2, 7, 4))  # q, k, v: (B=2, NH=2, T=7, HS=4)

# name: (function of tensors, the numpy inputs, float inputs that get gradients)
OPS = {
    "add": (lambda a, b: a + b, (A, B)),
    "sub_broadcast": (lambda a, b: a - b[0], (A, B)),
    "mul": (lambda a, b: a * b, (A, B)),
    "div": (lambda a, b: a / b, (A, POS)),
    "scalar_ops": (lambda a: (a * 2.5 + 1.0) ** 2, (A,)),
    "neg_abs": (lambda a: (-a).abs(), (A,)),
    "exp": (lambda a: a.exp(), (A,)),
    "log": (lambda a: a.log(), (POS,)),
    "tanh": (lambda a: a.tanh(), (A,)),
    "sqrt_rsqrt": (lambda a: a.sqrt() + a.rsqrt(), (POS,)),
    "pow": (lambda a, b: a ** b, (POS, B)),
    "matmul": (lambda a, w: a @ w.transpose(0, 1), (A, W)),
    "linear": (lambda a, w, b: F.linear(a, w, b), (A, W, B[0, :5])),
    "sum_dim": (lambda a: a.sum(dim=1, keepdim=True), (A,)),
    "mean_all": (lambda a: a.mean(), (A,)),
    "max_dim": (lambda a: a.max(1, True)[0], (A,)),
    "softmax": (lambda a: F.softmax(a, -1), (A,)),
    "log_softmax": (lambda a: F.log_softmax(a, -1), (A,)),
    "layer_norm": (lambda a, w, b: F.layer_norm(a, (6,), w, b), (A, B[0], B[1])),
    "gelu_tanh": (lambda a: F.gelu(a, approximate="tanh"), (A,)),
    "gelu": (lambda a: F.gelu(a), (A,)),
    "cross_entropy": (lambda a: F.cross_entropy(a, cgad.tensor(IDS, device=a.device)), (A,)),
    "embedding": (lambda w: F.embedding(cgad.tensor(IDS, device=w.device), w), (W,)),
    "sdpa_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), tuple(QKV)),
    "views": (lambda a: a.transpose(0, 1).reshape(3, 8).contiguous()[1:, ::2], (A,)),
    "cat_split": (lambda a, b: cgad.cat([a, b], 0).split(3, 0)[1], (A, B)),
    "masked_fill": (lambda a: a.masked_fill(cgad.tensor(B > 0, device=a.device), -1.0), (A,)),
}
FLOAT32_ONLY = {"embedding", "max_dim"}  # the CPU has no bfloat16 kernel of these either
CASES = [(name, dtype) for name in sorted(OPS) for dtype in ("float32", "bfloat16")
         if dtype == "float32" or name not in FLOAT32_ONLY]


def _run(fn, arrays, device, dtype):
    xs = [cgad.tensor(a, dtype=dtype, device=device, requires_grad=True) for a in arrays]
    out = fn(*xs)
    weighted_sum(out.float() if out.dtype != cgad.float32 else out).backward()
    return out.float().numpy(), [x.grad.float().numpy() for x in xs]


@pytest.mark.parametrize("name, dtype", CASES)
def test_the_op_list_runs_on_the_test_device(name, dtype):
    """Guards the list below without a GPU: every case runs, and on the CPU-backed test device
    gives the CPU's results exactly."""
    fn, arrays = OPS[name]
    cpu_out, cpu_grads = _run(fn, arrays, "cpu", dtype)
    out, grads = _run(fn, arrays, "test", dtype)
    np.testing.assert_array_equal(out, cpu_out)
    for g, cg in zip(grads, cpu_grads):
        np.testing.assert_array_equal(g, cg)


@gpu
@pytest.mark.parametrize("name, dtype", CASES)
def test_op_forward_and_vjp_match_the_cpu(name, dtype):
    cgad.backends.cuda.matmul.allow_tf32 = False
    fn, arrays = OPS[name]
    cpu_out, cpu_grads = _run(fn, arrays, "cpu", dtype)
    out, grads = _run(fn, arrays, "cuda", dtype)
    assert nmax_err(out, cpu_out) <= TOL[dtype], name
    for i, (g, cg) in enumerate(zip(grads, cpu_grads)):
        assert nmax_err(g, cg) <= TOL[dtype], (name, "grad", i)


@gpu
def test_forward_only_ops_match_the_cpu():
    for device in ("cpu", "cuda"):
        a = cgad.tensor(A, device=device)
        res = [(a > 0.1).numpy(), (a == a).numpy(), a.argmax(dim=1).numpy(), a.topk(3)[0].numpy(),
               a.topk(3)[1].numpy(), cgad.arange(0, 10, device=device).numpy(),
               cgad.tril(a).numpy(), cgad.zeros(3, 2, device=device).numpy()]
        if device == "cpu":
            cpu = res
    for r, c in zip(res, cpu):
        np.testing.assert_array_equal(r, c)


FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "gpt_tiny_reference.npz")


def _reference_model(ref, device):
    V, C, n_layer, n_head, block = (int(v) for v in ref["hparams"][:5])
    model = GPT(GPTConfig(block_size=block, vocab_size=V, n_layer=n_layer, n_head=n_head, n_embd=C))
    model.load_state_dict({k[2:]: v for k, v in ref.items() if k.startswith("w.")})
    return model.to(device)


@gpu
def test_gpt_parity_fixtures_on_cuda():
    """tests/test_gpt_model.py's torch reference outputs, on the GPU, at the same tolerances."""
    cgad.backends.cuda.matmul.allow_tf32 = False
    ref = dict(np.load(FIXTURE))
    model = _reference_model(ref, "cuda")
    logits, loss = model(cgad.tensor(ref["x"], device="cuda"), cgad.tensor(ref["y"], device="cuda"))
    assert logits.device == "cuda"
    assert nmax_err(logits.numpy(), ref["logits"]) <= 1e-5
    assert nmax_err(loss.item(), ref["loss"]) <= 1e-5
    loss.backward()
    for name, p in model.named_parameters():
        assert nmax_err(p.grad.numpy(), ref["g." + name]) <= 1e-4, name

    model = _reference_model(ref, "cuda")
    _, _, _, _, _, lr, b1, b2, eps, wd, clip = ref["hparams"]
    opt = model.configure_optimizers(float(wd), float(lr), betas=(float(b1), float(b2)), eps=float(eps))
    losses, norms = [], []
    for batch in ref["batches"]:
        opt.zero_grad()
        _, loss = model(cgad.tensor(batch[:, :-1], device="cuda"), cgad.tensor(batch[:, 1:], device="cuda"))
        loss.backward()
        norms.append(float(cgad.nn.utils.clip_grad_norm_(list(model.parameters()), float(clip))))
        losses.append(loss.item())
        opt.step()
    assert nmax_err(losses, ref["traj_loss"]) <= 1e-4
    assert nmax_err(norms, ref["traj_norm"]) <= 1e-4
    assert nmax_err(model.transformer.wte.weight.numpy(), ref["final_wte"]) <= 1e-4


TRAIN = GPTConfig(block_size=32, vocab_size=97, n_layer=2, n_head=4, n_embd=64)


def _train(steps, bf16, record_memory=False):
    cgad.manual_seed(3)
    model = GPT(TRAIN).to("cuda")
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=3e-3)
    rng = np.random.default_rng(0)
    data = rng.integers(0, TRAIN.vocab_size, (steps, 4, TRAIN.block_size + 1))
    losses, memory = [], []
    for batch in data:
        x, y = cgad.tensor(batch[:, :-1], device="cuda"), cgad.tensor(batch[:, 1:], device="cuda")
        with cgad.autocast("cuda", dtype=cgad.bfloat16, enabled=bf16):
            _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        cgad.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if record_memory:
            s = cgad.memory_stats("cuda")
            memory.append((s["os_allocs"], s["os_bytes"], s["allocated_bytes"]))
    return np.array(losses), memory


@gpu
def test_bf16_autocast_training_follows_float32():
    fp32, _ = _train(20, bf16=False)
    bf16, _ = _train(20, bf16=True)
    assert np.isfinite(bf16).all()
    assert np.max(np.abs(bf16 - fp32)) <= 2e-2, (bf16, fp32)
    assert bf16[-1] < bf16[0]


@gpu
def test_device_memory_is_flat_over_steps():
    _, memory = _train(8, bf16=True, record_memory=True)
    # after two warm-up steps the cache serves every allocation: nothing new from the driver
    assert len(set(memory[2:])) == 1, memory
    assert cgad.memory_stats("cuda")["peak_bytes"] > 0


@gpu
def test_host_buffers_freed_right_after_async_copies():
    """The crash in this system's history: a host buffer freed while an async copy still read
    it. Each CPU tensor below dies as soon as its copy is queued, and its memory (and the pinned
    staging blocks) is at once rewritten by the next one; every device tensor must still hold
    its own values. 10 MiB each: more than one staging chunk."""
    n = 10 * 2 ** 18
    on_gpu = []
    for i in range(12):
        on_gpu.append(cgad.tensor(np.full(n, float(i), dtype=np.float32), device="cuda"))
        scratch = cgad.full((n,), -1.0)  # likely the freed host block, overwritten at once
        del scratch
    for i, t in enumerate(on_gpu):
        v = t.numpy()
        assert v.min() == v.max() == float(i), i
    big = cgad.randn(3, 1000, 999)
    want = big.numpy()
    moved = big.cuda()
    del big
    cgad.empty_cache("cpu")
    np.testing.assert_array_equal(moved.numpy(), want)
    cgad.cuda.synchronize()
    cgad.empty_cache("cuda")
    assert cgad.memory_stats("cuda")["os_bytes"] == cgad.memory_stats("cuda")["allocated_bytes"]
