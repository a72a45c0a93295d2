"""Run by tests/test_distributed.py under `mpiexec -n 2`: initial weights broadcast from rank 0,
then gradients averaged in one flat all_reduce; rank 0 prints every rank's weights and grads."""
import json

import cgad
import cgad.distributed as dist
import cgad.nn as nn

r = dist.get_rank()
cgad.manual_seed(100 + r)  # different initial weights on each rank
model = nn.Sequential(nn.Linear(3, 4), nn.GELU("tanh"), nn.Linear(4, 2, bias=False))
params = list(model.parameters())
dist.broadcast_parameters(params, src=0)
x = cgad.randn(5, 3) * (r + 1)  # different data on each rank
model(x).sum().backward()
params[-1].grad = None if r == 1 else params[-1].grad  # a grad missing on one rank counts as zeros
local = [None if p.grad is None else p.grad.tolist() for p in params]
dist.GradientSync(params)()
mine = {"rank": r, "weights": [p.tolist() for p in params], "local": local, "synced": [p.grad.tolist() for p in params]}
for d in dist.all_gather_json(mine):  # rank 0 prints for everyone: ranks' stdout lines can interleave
    if r == 0:
        print(json.dumps(d), flush=True)
