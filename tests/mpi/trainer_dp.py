"""Run by tests/test_distributed.py: a tiny GPT trained by the Trainer on N ranks (one
micro-step each) or on one process (accumulating N micro-steps), on the same shard. Rank 0
prints the losses and norms of every step and each rank's weight hash and loader position.
argv: shard path, run folder, number of data-parallel micro-steps per optimizer step."""
import hashlib
import json
import sys

import numpy as np

import cgad
import cgad.distributed as dist
from cgad.data import DataLoaderLite
from cgad.models.gpt import GPT, GPTConfig
from cgad.trainer import Trainer

shard, out, micro = sys.argv[1], sys.argv[2], int(sys.argv[3])
if not dist.is_initialized():
    dist.init_process_group()
rank, world = dist.get_rank(), dist.get_world_size()
cgad.set_num_threads(1)
cgad.manual_seed(1337)
model = GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=2, n_embd=16))
opt = model.configure_optimizers(weight_decay=0.1, learning_rate=3e-3)
loader = DataLoaderLite(2, 16, shard, process_rank=rank, num_processes=world)
steps = []
trainer = Trainer(model, opt, loader, max_steps=5, grad_accum_steps=micro // world, grad_clip=1.0,
                  ckpt_every=0, out_dir=out, log=lambda line: None)
trainer.add_callback("on_step_end", lambda t, info: steps.append((info["loss"], info["norm"])))
trainer.run()
digest = hashlib.sha256(b"".join(p.numpy().tobytes() for p in model.parameters())).hexdigest()
everyone = dist.all_gather_json({"hash": digest, "position": loader.current_position})
if rank == 0:
    weights = {n: p.numpy().tolist() for n, p in model.named_parameters()}
    print(json.dumps({"steps": steps, "ranks": everyone, "weights": weights}), flush=True)
