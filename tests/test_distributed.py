"""cgad.distributed: one process (no MPI needed) and two ranks under mpiexec (collective values,
dtypes, mismatches and timeouts are errors on every rank, not hangs). The mpiexec tests skip
without mpi4py/mpiexec, except where CGAD_REQUIRE_MPI=1 (CI) makes that a failure."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import cgad
import cgad.distributed as dist

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
