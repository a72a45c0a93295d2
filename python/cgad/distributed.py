"""cgad.distributed: data-parallel collectives over MPI (through mpi4py), launched with mpiexec.

A process that mpiexec started is recognised from its environment (PMI_RANK/PMI_SIZE from
MPICH's launcher, OMPI_COMM_WORLD_RANK/SIZE from Open MPI's) and initialises its process group
when this module is imported. One process needs no MPI at all: its group has one rank, and every
collective is the identity. Collectives work in place on contiguous CPU tensors and check first
that every rank passes the same size and dtype, so a mismatch is an error on every rank rather
than a hang; a collective that does not complete within `timeout` seconds (a rank that died or
never arrived) is a RuntimeError.
"""
import json
import os
import sys
import time

import numpy as np

from cgad import _C

_OPS = ("sum", "avg")
_ENV = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))
DEFAULT_TIMEOUT = 300.0  # seconds a collective may wait for the other ranks
_GROUP_TIMEOUT = object()  # "the group's timeout", as a default argument


class _Group:
    comm = None  # mpi4py's COMM_WORLD, None for a one-process group
    rank = 0
    size = 1
    timeout = DEFAULT_TIMEOUT


_group = None


def launched_world():
    """(rank, size) that the MPI launcher put in the environment, or None outside a launcher."""
    for rank_var, size_var in _ENV:
        if rank_var in os.environ and size_var in os.environ:
            return int(os.environ[rank_var]), int(os.environ[size_var])
    return None


def init_process_group(backend="mpi", timeout=DEFAULT_TIMEOUT):
    """Joins the job's process group (done for you under mpiexec). More than one rank needs
    mpi4py: a RuntimeError says to `pip install ".[mpi]"` when it is missing."""
    global _group
    if backend != "mpi":
        raise ValueError(f"init_process_group: unknown backend {backend!r} (cgad supports 'mpi')")
    if not timeout > 0:
        raise ValueError(f"init_process_group: timeout must be positive, got {timeout!r}")
    if _group is not None:
        raise RuntimeError("init_process_group: the process group is already initialized")
    group = _Group()
    group.timeout = float(timeout)
    world = launched_world()
    if world is not None and world[1] > 1:
        try:
            from mpi4py import MPI
        except ImportError:
            raise RuntimeError(f"cgad.distributed: this process is rank {world[0]} of {world[1]} under an MPI "
                               "launcher, but mpi4py is not installed; install cgad's MPI extra: "
                               'pip install ".[mpi]"') from None
        group.comm = MPI.COMM_WORLD
        group.rank, group.size = group.comm.Get_rank(), group.comm.Get_size()
    _group = group


def is_initialized():
    return _group is not None


def _require(op):
    if _group is None:
        raise RuntimeError(f"{op}: the process group is not initialized; call cgad.distributed.init_process_group()")
    return _group


def get_rank():
    """This process's rank (0 on one process)."""
    return _require("get_rank").rank


def get_world_size():
    """The number of processes in the job (1 on one process)."""
    return _require("get_world_size").size


def destroy_process_group():
    """Leaves the group (MPI itself is finalized by mpi4py at exit)."""
    global _group
    _require("destroy_process_group")
    _group = None


def _wait(group, request, op, timeout=_GROUP_TIMEOUT):
    """Waits for a non-blocking MPI request, with the group's timeout. MPICH moves data only
    inside MPI calls, so the first second spins on Test() as a blocking wait would; after that a
    rank that is late (or dead) is polled every millisecond."""
    start = time.monotonic()
    limit = group.timeout if timeout is _GROUP_TIMEOUT else timeout
    deadline = start + limit if limit is not None else float("inf")
    while not request.Test():
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"{op}: timed out after {limit:g} s waiting for the other ranks "
                               f"(rank {group.rank} of {group.size})")
        if now - start > 1.0:
            time.sleep(1e-3)


def _agree(group, t, op):
    """Every rank's (numel, dtype) must match this rank's; else a ValueError on every rank."""
    mine = np.array([t.numel(), int(t.dtype)], np.int64)
    everyone = np.empty((group.size, 2), np.int64)
    _wait(group, group.comm.Iallgather(mine, everyone), op)
    if (everyone != mine).any():
        by_rank = ", ".join(f"rank {r}: {n} elements of {_C.dtype(d).name}" for r, (n, d) in enumerate(everyone))
        raise ValueError(f"{op}: the ranks passed different tensors ({by_rank})")


def _check_tensor(t, op):
    if not isinstance(t, _C.Tensor):
        raise TypeError(f"{op}: expected a cgad.Tensor, got {type(t).__name__}")
    if t.device != "cpu":
        raise RuntimeError(f"{op}: MPI collectives work on CPU tensors, got one on {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"{op}: the tensor must be contiguous")


def all_reduce(t, op="sum"):
    """Reduces t over all ranks in place: op "sum" or "avg" (floating tensors)."""
    if op not in _OPS:
        raise ValueError(f"all_reduce: unknown op {op!r} (expected 'sum' or 'avg')")
    _check_tensor(t, "all_reduce")
    if op == "avg" and not t.dtype.is_floating_point:
        raise TypeError(f"all_reduce: op 'avg' needs a floating tensor, got {t.dtype}")
    group = _require("all_reduce")
    if group.size == 1:
        return t
    _agree(group, t, "all_reduce")
    from mpi4py import MPI
    buf = _C.host_view(t)
    _wait(group, group.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM), "all_reduce")
    if op == "avg":
        buf /= group.size
    return t


def broadcast(t, src=0):
    """Overwrites t on every rank with rank src's t, in place."""
    _check_tensor(t, "broadcast")
    group = _require("broadcast")
    if not isinstance(src, int) or isinstance(src, bool) or not 0 <= src < group.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {group.size}), got {src!r}")
    if group.size == 1:
        return t
    _agree(group, t, "broadcast")
    _wait(group, group.comm.Ibcast(_C.host_view(t), root=src), "broadcast")
    return t


def barrier():
    """Waits until every rank has arrived."""
    group = _require("barrier")
    if group.size > 1:
        _wait(group, group.comm.Ibarrier(), "barrier")


def all_gather_json(obj, timeout=_GROUP_TIMEOUT):
    """Every rank's JSON-serializable obj, in rank order, on every rank (small records such as
    data-loader positions; JSON, never pickle). timeout: seconds, the group's by default, None
    to wait as long as it takes."""
    group = _require("all_gather_json")
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8).copy()
    if group.size == 1:
        return [json.loads(data.tobytes())]
    sizes = np.empty(group.size, np.int64)
    _wait(group, group.comm.Iallgather(np.array([data.size], np.int64), sizes), "all_gather_json", timeout)
    gathered = np.empty(int(sizes.sum()), np.uint8)
    _wait(group, group.comm.Iallgatherv(data, (gathered, sizes)), "all_gather_json", timeout)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return [json.loads(gathered[offsets[r]:offsets[r + 1]].tobytes()) for r in range(group.size)]


def any_rank(flag):
    """True on every rank when flag is true on any rank (a stop request, an error)."""
    group = _require("any_rank")
    if group.size == 1:
        return bool(flag)
    buf = np.array([1 if flag else 0], np.int64)
    from mpi4py import MPI
    _wait(group, group.comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.MAX), "any_rank")
    return bool(buf[0])


def abort(status=1):
    """Ends every rank of the job now (an error on one rank must not leave the others waiting)."""
    group = _require("abort")
    if group.size > 1:
        # the launcher forwards this rank's output asynchronously and stops forwarding when the
        # job is killed: give it a moment to pass on the error just printed
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(2.0)
        group.comm.Abort(status)
    raise SystemExit(status)


class GradientSync:
    """Data-parallel gradient averaging: after the last micro-step's backward, every parameter's
    grad is packed into one flat float32 buffer (allocated once), averaged over the ranks with a
    single all_reduce, and unpacked, so every rank takes the same optimizer step. Parameters
    without a grad on this rank count as zeros (every rank must pass the same parameter list)."""

    def __init__(self, params):
        self.params = list(params)
        for p in self.params:
            if p.dtype != _C.dtype.float32:
                raise TypeError(f"GradientSync: parameters must be float32, got {p.dtype}")
        self.numels = [p.numel() for p in self.params]
        self.flat = None

    def __call__(self):
        group = _require("GradientSync")
        if group.size == 1:
            return
        import cgad
        if self.flat is None:
            self.flat = cgad.zeros(sum(self.numels))
        views, off = [], 0
        for p, n in zip(self.params, self.numels):
            view = self.flat[off:off + n]
            if p.grad is None:
                view.fill_(0.0)
            else:
                view.copy_(p.grad.reshape(-1))
            views.append(view)
            off += n
        all_reduce(self.flat, op="avg")
        for p, view in zip(self.params, views):
            if p.grad is None:
                p.grad = cgad.zeros(*p.shape, device=p.device)
            p.grad.copy_(view.reshape(*p.shape))


def broadcast_parameters(params, src=0):
    """Every rank starts from rank src's weights (one broadcast per parameter)."""
    for p in params:
        broadcast(p, src=src)


if launched_world() is not None and launched_world()[1] > 1:
    init_process_group()
