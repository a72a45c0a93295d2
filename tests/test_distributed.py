"""cgad.distributed: one process (no MPI needed) and two ranks under mpiexec (collective values,
dtypes, mismatches and timeouts are errors on every rank, not hangs). The mpiexec tests skip
without mpi4py/mpiexec, except where CGAD_REQUIRE_MPI=1 (CI) makes that a failure."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cgad
import cgad.distributed as dist
from cgad.data import write_shard

HERE = os.path.dirname(os.path.abspath(__file__))


def mpiexec():
    """The mpiexec next to this Python (pip's mpich puts it there) or on PATH, or skip."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        mpi4py = None
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None or mpi4py is None:
        if os.environ.get("CGAD_REQUIRE_MPI") == "1":
            pytest.fail("CGAD_REQUIRE_MPI=1 but mpi4py or mpiexec is missing: pip install '.[mpi]'")
        pytest.skip("mpi4py/mpiexec not installed (pip install '.[mpi]')")
    return exe


@pytest.fixture
def single():
    if not dist.is_initialized():
        dist.init_process_group()
    yield
    dist.destroy_process_group()


def test_one_process_needs_no_mpi(single):
    assert dist.get_rank() == 0 and dist.get_world_size() == 1
    t = cgad.tensor([1.0, 2.0])
    assert dist.all_reduce(t) is t and t.tolist() == [1.0, 2.0]
    dist.all_reduce(t, op="avg")
    dist.broadcast(t, src=0)
    dist.barrier()
    assert t.tolist() == [1.0, 2.0]


def test_errors(single):
    with pytest.raises(ValueError, match="unknown op 'max'"):
        dist.all_reduce(cgad.ones(2), op="max")
    with pytest.raises(TypeError, match="'avg' needs a floating tensor"):
        dist.all_reduce(cgad.ones(2, dtype=cgad.int64), op="avg")
    with pytest.raises(TypeError, match="expected a cgad.Tensor"):
        dist.all_reduce([1.0])
    with pytest.raises(RuntimeError, match="CPU tensors"):
        dist.all_reduce(cgad.ones(2, device="test"))
    with pytest.raises(ValueError, match="contiguous"):
        dist.broadcast(cgad.ones(2, 3).transpose(0, 1))
    with pytest.raises(ValueError, match="src must be a rank in"):
        dist.broadcast(cgad.ones(2), src=1)
    with pytest.raises(RuntimeError, match="already initialized"):
        dist.init_process_group()
    with pytest.raises(ValueError, match="unknown backend 'nccl'"):
        dist.init_process_group(backend="nccl")


def test_uninitialized_is_an_error():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="not initialized"):
        dist.get_rank()


def test_many_ranks_without_mpi4py_names_the_extra(tmp_path):
    # a process that the launcher says is rank 0 of 2, where mpi4py cannot be imported
    (tmp_path / "mpi4py").mkdir()
    (tmp_path / "mpi4py" / "__init__.py").write_text("raise ImportError('no mpi4py here')\n")
    env = dict(os.environ, PMI_RANK="0", PMI_SIZE="2", PYTHONPATH=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", "import cgad.distributed"], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    assert 'pip install ".[mpi]"' in proc.stderr and "rank 0 of 2" in proc.stderr


def test_two_ranks_under_mpiexec():
    exe = mpiexec()
    proc = subprocess.run([exe, "-n", "2", sys.executable, os.path.join(HERE, "mpi", "collectives.py")],
                          capture_output=True, text=True, timeout=120)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    ranks = {d["rank"]: d for d in lines if "sum" in d}
    assert sorted(ranks) == [0, 1], proc.stdout + proc.stderr
    for r, d in ranks.items():
        assert d["size"] == 2 and d["initialized"]
        assert d["sum"] == [3.0, 6.0, 9.0]
        assert d["avg"] == [1.5, 3.0] and d["avg_dtype"] == "cgad.float64"
        assert d["int"] == [3, 6] and d["int_dtype"] == "cgad.int32"
        assert d["bcast"] == [6.0, 6.0]  # rank 1's value everywhere
        assert "rank 0: 3 elements of float32, rank 1: 4 elements of float32" in d["mismatch_numel"]
        assert "rank 0: 3 elements of float64, rank 1: 3 elements of float32" in d["mismatch_dtype"]
    timeouts = [d for d in lines if "timeout" in d]
    assert timeouts and "barrier: timed out after 1 s" in timeouts[0]["timeout"], proc.stdout + proc.stderr


def test_gradient_sync_averages_over_ranks():
    exe = mpiexec()
    proc = subprocess.run([exe, "-n", "2", sys.executable, os.path.join(HERE, "mpi", "grad_sync.py")],
                          capture_output=True, text=True, timeout=120)
    ranks = {d["rank"]: d for d in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))}
    assert sorted(ranks) == [0, 1], proc.stdout + proc.stderr
    assert ranks[0]["weights"] == ranks[1]["weights"]  # rank 0's init everywhere
    for i, (g0, g1) in enumerate(zip(ranks[0]["local"], ranks[1]["local"])):
        expected = (np.array(g0) + (np.array(g1) if g1 is not None else 0.0)) / 2
        for d in ranks.values():
            np.testing.assert_allclose(d["synced"][i], expected, rtol=1e-6, err_msg=str(i))
    assert ranks[0]["synced"] == ranks[1]["synced"]  # bit-identical on every rank


def test_gradient_sync_needs_float32(single):
    with pytest.raises(TypeError, match="must be float32"):
        dist.GradientSync([cgad.ones(2, dtype=cgad.float64)])


def _train(tmp_path, name, ranks):
    shard = tmp_path / "train.bin"
    if not shard.exists():
        write_shard(str(shard), np.random.default_rng(0).integers(0, 50, 4000))
    script = [sys.executable, os.path.join(HERE, "mpi", "trainer_dp.py"), str(shard), str(tmp_path / name), "2"]
    cmd = [mpiexec(), "-n", str(ranks)] + script if ranks > 1 else script
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_two_ranks_train_as_one_process_accumulating(tmp_path):
    two = _train(tmp_path, "A", 2)  # one micro-step per rank, one gradient all_reduce
    one = _train(tmp_path, "B", 1)  # the same two micro-batches accumulated on one process
    for (l2, n2), (l1, n1) in zip(two["steps"], one["steps"]):
        assert abs(l2 - l1) <= 1e-6 * abs(l1) and abs(n2 - n1) <= 1e-6 * abs(n1)
    for name, w in one["weights"].items():
        np.testing.assert_allclose(two["weights"][name], w, rtol=1e-6, atol=1e-7, err_msg=name)
    hashes = {r["hash"] for r in two["ranks"]}
    assert len(hashes) == 1  # every rank holds the same weights
    positions = [r["position"] for r in two["ranks"]]
    assert positions[1] - positions[0] == 2 * 16  # each rank read its own stride


GPT2_PY = os.path.join(os.path.dirname(HERE), "train", "gpt2.py")
SMALL_RUN = ["--threads", "1", "-B", "4", "-T", "32", "--val-every", "0", "--num-samples", "0"]


def _records(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if "loss" in r]


def _weights(out):
    from safetensors.numpy import load_file
    with open(os.path.join(out, "latest")) as f:
        return load_file(os.path.join(out, f.read().strip(), "model.safetensors"))


def test_gpt2_py_on_two_ranks_matches_one_process_accumulating(tmp_path):
    exe = mpiexec()
    a, b = str(tmp_path / "A"), str(tmp_path / "B")
    two = subprocess.run([exe, "-n", "2", sys.executable, GPT2_PY, *SMALL_RUN, "--total-batch-size", "256",
                          "--max-steps", "10", "--out", a], capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    assert "x 2 ranks x 1 accumulation step(s)" in two.stdout
    assert sum(line.startswith("step ") for line in two.stdout.splitlines()) == 10  # rank 0 alone prints
    one = subprocess.run([sys.executable, GPT2_PY, *SMALL_RUN, "--total-batch-size", "256", "--max-steps", "10",
                          "--out", b], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stdout + one.stderr
    assert len(_records(a)) == len(_records(b)) == 10
    for r2, r1 in zip(_records(a), _records(b)):
        assert abs(r2["loss"] - r1["loss"]) <= 1e-6 * abs(r1["loss"]), (r2, r1)
        assert abs(r2["norm"] - r1["norm"]) <= 1e-6 * abs(r1["norm"]), (r2, r1)
    wa, wb = _weights(a), _weights(b)
    for name in wb:
        np.testing.assert_allclose(wa[name], wb[name], rtol=1e-6, atol=1e-7, err_msg=name)
    with open(os.path.join(a, "latest")) as f:
        latest = f.read().strip()
    with open(os.path.join(a, latest, "state.json")) as f:
        state = json.load(f)
    assert state["ranks"] == 2 and len(state["train_loaders"]) == 2
    # the default --total-batch-size is B*T*ranks, and a batch that does not split is an error
    bad = subprocess.run([exe, "-n", "2", sys.executable, GPT2_PY, *SMALL_RUN, "--total-batch-size", "384",
                          "--out", str(tmp_path / "C")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "not a multiple of B*T*ranks = 4*32*2 = 256" in bad.stderr
    assert not os.path.exists(tmp_path / "C")  # rank 0's checks failed: nothing was created


def test_two_rank_run_stopped_by_sigterm_resumes_to_the_same_losses(tmp_path):
    exe = mpiexec()
    full, cut = str(tmp_path / "full"), str(tmp_path / "cut")
    args = [sys.executable, GPT2_PY, *SMALL_RUN, "--max-steps", "12"]
    done = subprocess.run([exe, "-n", "2", *args, "--out", full], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    proc = subprocess.Popen([exe, "-n", "2", *args, "--out", cut], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # stop it a few steps in
        path = os.path.join(cut, "metrics.jsonl")
        if os.path.exists(path) and len(_records(cut)) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # mpiexec forwards it to every rank
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stdout + stderr
    assert "resume with: mpiexec -n 2 python" in stdout
    one = subprocess.run([sys.executable, GPT2_PY, "--resume", "--out", cut], capture_output=True, text=True,
                         timeout=120)
    assert one.returncode == 1 and "written by a run on 2 rank(s); this run has 1" in one.stderr
    resumed = subprocess.run([exe, "-n", "2", sys.executable, GPT2_PY, "--resume", "--out", cut],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert [r["loss"] for r in _records(cut)] == [r["loss"] for r in _records(full)]


def test_a_rank_that_fails_mid_run_ends_the_job(tmp_path):
    exe = mpiexec()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, 20000)
    tokens[4 * 32 * (2 * 2 + 1) + 5] = 60000  # in rank 1's slice of step 2: out of GPT-2's vocabulary
    write_shard(str(tmp_path / "d_train_000.bin"), tokens)
    write_shard(str(tmp_path / "d_val_000.bin"), rng.integers(0, 50, 5000))
    proc = subprocess.run([exe, "-n", "2", sys.executable, GPT2_PY, "--data", str(tmp_path), *SMALL_RUN,
                           "--max-steps", "50", "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "error: rank 1: " in proc.stderr and "has id 60000, out of range" in proc.stderr
