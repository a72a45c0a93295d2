"""Data-parallel training on MPI against one process, side by side in one run: one optimizer step
of the same global batch on 1 rank x T threads (gradient accumulation over R micro-steps) and on
R ranks x T/R threads (one micro-step each, then one gradient all_reduce), alternating, with the
all_reduce's share of the step; then the all_reduce bandwidth for GPT-2 124M's gradient size.

Usage: python bench/data_parallel.py [--config char] [--ranks 2] [--rounds 3]
(needs `pip install ".[mpi]"`).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_step import CONFIGS, _batch  # noqa: E402

GPT2_PARAMS = 124_439_808  # GPT-2 124M's parameter count (tied lm_head counted once)


def worker(args):
    import cgad
    import cgad.distributed as dist
    from cgad.models.gpt import GPT, GPTConfig
    if not dist.is_initialized():
        dist.init_process_group()
    rank, ranks = dist.get_rank(), dist.get_world_size()
    cgad.set_num_threads(args.threads)
    L, H, C, V, B, T = CONFIGS[args.config]
    cgad.manual_seed(0)
    model = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=L, n_head=H, n_embd=C))
    params = list(model.parameters())
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-4)
    sync = dist.GradientSync(params)
    accum = args.global_micro // ranks
    batches = [tuple(cgad.tensor(a) for a in _batch(CONFIGS[args.config], seed=s))
               for s in range(rank * accum, (rank + 1) * accum)]
    steps, sync_times = [], []
    for i in range(args.warmup + args.steps):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        for x, y in batches:
            _, loss = model(x, y)
            (loss * (1.0 / accum)).backward()  # this rank's mean; the ranks' average is the global mean
        t1 = time.perf_counter()
        if ranks > 1:
            sync()
        t2 = time.perf_counter()
        cgad.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dist.barrier()
        if i >= args.warmup:
            steps.append(time.perf_counter() - t0)
            sync_times.append(t2 - t1)
    result = {"rank": rank, "step": statistics.median(steps), "sync": statistics.median(sync_times)}
    if args.bandwidth and ranks > 1:
        buf = cgad.zeros(GPT2_PARAMS)
        times = []
        for _ in range(3):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(buf)
            times.append(time.perf_counter() - t0)
        result["allreduce_s"] = min(times)
    if rank == 0:
        print(json.dumps(result), flush=True)


def launch(args, ranks):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    threads = max(1, args.threads // ranks)
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--config", args.config, "--threads", str(threads),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--global-micro", str(args.ranks)]
    if ranks > 1:
        cmd = [mpiexec, "-n", str(ranks)] + cmd + (["--bandwidth"] if args.bandwidth else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{ranks}-rank run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="char", choices=list(CONFIGS))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads in all (split over the ranks)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bandwidth", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--global-micro", type=int, default=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    B, T = CONFIGS[args.config][4], CONFIGS[args.config][5]
    print(f"config {args.config}: global batch {args.ranks} x {B} x {T} tokens, {args.threads} threads in all")
    one, many = [], []
    args.bandwidth = False
    for r in range(args.rounds):
        one.append(launch(args, 1))
        args.bandwidth = r == args.rounds - 1
        many.append(launch(args, args.ranks))
    s1 = statistics.median(d["step"] for d in one) * 1e3
    sN = statistics.median(d["step"] for d in many) * 1e3
    sync = statistics.median(d["sync"] for d in many) * 1e3
    print(f"1 rank x {args.threads} threads (accumulating {args.ranks} micro-steps): {s1:9.1f} ms/step")
    print(f"{args.ranks} ranks x {max(1, args.threads // args.ranks)} thread(s): {sN:9.1f} ms/step, all_reduce "
          f"{sync:.1f} ms ({100 * sync / sN:.1f}% of the step); {args.ranks} ranks / 1 rank: {s1 / sN:.2f}x")
    bw = many[-1].get("allreduce_s")
    if bw:
        nbytes = GPT2_PARAMS * 4
        print(f"all_reduce of GPT-2 124M's grads ({nbytes / 1e6:.0f} MB float32) on {args.ranks} ranks: "
              f"{bw * 1e3:.0f} ms, {nbytes / bw / 1e9:.2f} GB/s algorithm bandwidth")


if __name__ == "__main__":
    sys.exit(main())
