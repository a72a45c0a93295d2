"""Run by tests/test_distributed.py under `mpiexec -n 2`: each rank prints one JSON line of what
the collectives gave it; rank 0 then checks that a collective the other rank never joins times
out (an error, not a hang)."""
import json
import os
import sys
import time

import cgad
import cgad.distributed as dist

r = dist.get_rank()
out = {"rank": r, "size": dist.get_world_size(), "initialized": dist.is_initialized()}
t = cgad.tensor([1.0, 2.0, 3.0]) * (r + 1)
dist.all_reduce(t)
out["sum"] = t.tolist()
t = cgad.tensor([1.0, 2.0], dtype=cgad.float64) * (r + 1)
dist.all_reduce(t, op="avg")
out["avg"], out["avg_dtype"] = t.tolist(), str(t.dtype)
i = cgad.tensor([1, 2], dtype=cgad.int32) * (r + 1)
dist.all_reduce(i)
out["int"], out["int_dtype"] = i.tolist(), str(i.dtype)
b = cgad.full((2,), float(r + 5))
dist.broadcast(b, src=1)
out["bcast"] = b.tolist()
for name, bad in (("numel", cgad.ones(3 + r)), ("dtype", cgad.ones(3, dtype=cgad.float32 if r else cgad.float64))):
    try:
        dist.all_reduce(bad)
    except ValueError as e:
        out["mismatch_" + name] = str(e)
dist.barrier()
print(json.dumps(out), flush=True)
dist.barrier()
dist._group.timeout = 1.0
if r == 0:
    try:
        dist.barrier()
    except RuntimeError as e:
        print(json.dumps({"rank": 0, "timeout": str(e)}), flush=True)
    sys.stdout.flush()
    os._exit(0)  # a request is left pending on purpose: skip MPI's finalize
time.sleep(3)
os._exit(0)
