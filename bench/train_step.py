"""Times a full GPT-2 training step (forward, backward, clip_grad_norm_, AdamW) in cgad and,
when torch is installed, in torch with the same weights, side by side in one run.

Each implementation runs in its own subprocess so that peak RSS is its own (importing torch alone
adds hundreds of MiB). Usage: python bench/train_step.py [--configs tiny,char] [--compile]
[--dtype bfloat16] [--device cuda]. With --dtype bfloat16 the forward and loss run under
cgad.autocast and torch.autocast (bf16 matmuls, float32 master weights), and cgad's float32 step
("cgad32") runs beside them as the baseline of the bf16 speed-up.

--device cuda (issue 24): both engines on the same GPU, by default GPT-2 124M at B=16, T=1024
under bf16 autocast, torch eager and torch.compile beside cgad; tok/s, MFU against the GPU's dense
bf16 peak (--peak-tflops) and peak device memory instead of RSS. Each step ends with loss.item(),
so its time includes the GPU's work.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from c_bench import run_c_bench
from procfs import status_kib

CONFIGS = {  # name: (n_layer, n_head, n_embd, vocab, B, T)
    "tiny": (2, 4, 128, 256, 16, 128),
    "char": (6, 6, 384, 65, 12, 256),
    "d6": (6, 6, 384, 50257, 8, 256),
    "gpt2": (12, 12, 768, 50257, 4, 64),
    "gpt2-1024": (12, 12, 768, 50257, 16, 1024),  # GPT-2 124M as trained on a GPU
}


# Issue 11's tok/s targets: cgad over torch eager (and over torch.compile, where timed); issue
# 21's for bf16: cgad autocast over torch autocast and over cgad's own float32 step.
TARGETS = {"torch": {"tiny": 2.0, "char": 1.3, "d6": 1.3, "gpt2": 1.3}, "compile": {"char": 1.0}}
TARGETS_BF16 = {"torch": {"char": 1.3, "d6": 1.3, "gpt2": 1.3}, "cgad32": {"char": 1.6, "d6": 1.6}}
# Issue 24's on one H200: at least torch.compile's tok/s, and 450k tok/s (llm.c's H100 figure)
TARGETS_CUDA = {"compile": {"gpt2-1024": 1.0}}
TARGET_CUDA_TOK_S = {"gpt2-1024": 450_000}
H100_H200_BF16_TFLOPS = 989.0  # dense bf16 tensor-core peak of an H100/H200 SXM


def flops_per_step(cfg):
    """Model FLOPs of one step (PaLM/nanoGPT estimate): 6 per weight per token plus attention."""
    L, H, C, V, B, T = cfg
    n_weights = V * C + L * (12 * C * C)  # lm_head (tied wte) and the blocks' matmuls
    return (6 * n_weights + 12 * L * C * T) * B * T


def _batch(cfg, seed=0):
    rng = np.random.default_rng(seed)
    _, _, _, V, B, T = cfg
    data = rng.integers(0, V, (B, T + 1))
    return np.ascontiguousarray(data[:, :-1]), np.ascontiguousarray(data[:, 1:])


def worker_cgad(cfg, weights, steps, warmup, threads, bf16=False, device="cpu"):
    import cgad
    from cgad.models.gpt import GPT, GPTConfig
    cgad.set_num_threads(threads)
    L, H, C, V, B, T = cfg
    model = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=L, n_head=H, n_embd=C))
    model.load_state_dict(dict(np.load(weights)))
    model.to(device)
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-4)
    x, y = (cgad.tensor(a, device=device) for a in _batch(cfg))
    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with cgad.autocast(device.split(":")[0], dtype=cgad.bfloat16, enabled=bf16):
            _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        cgad.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, losses


def worker_torch(cfg, weights, steps, warmup, threads, compile_, bf16=False, device="cpu"):
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_gpt import GPT
    torch.set_num_threads(threads)
    L, H, C, V, B, T = cfg
    model = GPT(L, H, C, V, T)
    sd = {k: torch.from_numpy(v) for k, v in np.load(weights).items()}
    model.load_state_dict(sd, strict=False)
    model.to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    step_model = torch.compile(model) if compile_ else model
    x, y = (torch.from_numpy(a).to(device) for a in _batch(cfg))
    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            _, loss = step_model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, losses


def sgemm_peak(threads, n=2048, reps=5):
    """Best GFLOP/s of an n^3 float32 GEMM through cgad's OpenBLAS."""
    import cgad
    cgad.set_num_threads(threads)
    a, b = cgad.randn(n, n), cgad.randn(n, n)
    best = 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        (a @ b).numel()
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


def fma_peak(threads):
    """GFLOP/s of bench/fma_peak.c (register-only FMAs: the hardware's float32 ceiling), or None
    where no C compiler with OpenMP is at hand."""
    return run_c_bench("fma_peak", ["-march=native"], threads)


def peak_rss_mib():
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: Linux carries the parent's
    high-water mark into ru_maxrss across fork + exec, so every worker would report at least the
    launcher's RSS (which holds torch)."""
    try:
        return status_kib("VmHWM") / 1024
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_device_mib(impl, device):
    """Peak device memory of the worker's engine on a GPU: cgad's allocator or torch's."""
    if impl in ("cgad", "cgad32"):
        import cgad
        return cgad.memory_stats(device)["peak_bytes"] / 2 ** 20
    import torch
    return torch.cuda.max_memory_allocated(device) / 2 ** 20


def run_worker(args):
    cfg = CONFIGS[args.config]
    bf16 = args.dtype == "bfloat16"
    if args.worker in ("cgad", "cgad32"):
        times, losses = worker_cgad(cfg, args.weights, args.steps, args.warmup, args.threads, bf16 and args.worker == "cgad",
                                    args.device)
    else:
        times, losses = worker_torch(cfg, args.weights, args.steps, args.warmup, args.threads, args.worker == "compile",
                                     bf16, args.device)
    mem = peak_rss_mib() if args.device == "cpu" else peak_device_mib(args.worker, args.device)
    print(json.dumps({"times": times, "losses": losses, "rss_mib": mem}))


def save_weights(cfg, path):
    import cgad
    from cgad.models.gpt import GPT, GPTConfig
    cgad.manual_seed(0)
    L, H, C, V, B, T = cfg
    model = GPT(GPTConfig(block_size=T, vocab_size=V, n_layer=L, n_head=H, n_embd=C))
    np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})


def spawn(impl, config, weights, args, python=sys.executable):
    """One worker run in a subprocess of `python` (another install of cgad, for bench/compare_builds.py)."""
    cmd = [python, os.path.abspath(__file__), "--worker", impl, "--config", config, "--weights", weights,
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--dtype", getattr(args, "dtype", "float32"), "--device", getattr(args, "device", "cpu")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{impl} worker for {config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", help="comma-separated subset of " + ", ".join(CONFIGS) +
                    " (default: all but gpt2-1024 on the CPU, gpt2-1024 on CUDA)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per implementation")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every implementation")
    ap.add_argument("--rounds", type=int, default=2, help="alternating cgad/torch rounds (best median kept)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (always on CUDA)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"),
                    help="bfloat16: the forward under autocast in both engines, cgad float32 beside them "
                         "(default float32 on the CPU, bfloat16 on CUDA)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where both engines run")
    ap.add_argument("--peak-tflops", type=float, default=H100_H200_BF16_TFLOPS,
                    help="on CUDA: the GPU's dense bf16 peak that MFU is measured against (default: H100/H200)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cuda = args.device == "cuda"
    args.dtype = args.dtype or ("bfloat16" if cuda else "float32")
    if args.worker:
        return run_worker(args)
    args.configs = args.configs or ("gpt2-1024" if cuda else ",".join(c for c in CONFIGS if c != "gpt2-1024"))

    try:
        import torch  # noqa: F401
        impls = ["cgad", "torch"] + (["compile"] if args.compile or cuda else [])
    except ImportError:
        impls = ["cgad"]
        print("torch is not installed: timing cgad alone")
    bf16 = args.dtype == "bfloat16"
    if bf16 and not cuda:
        impls.append("cgad32")
    if cuda:
        peak, fma = args.peak_tflops * 1e3, None
        print(f"device cuda, dtype {args.dtype}: %peak is MFU against {args.peak_tflops:.0f} TFLOP/s dense bf16; "
              f"memory is each engine's peak device memory")
    else:
        peak = sgemm_peak(args.threads)
        print(f"sgemm peak (cgad/OpenBLAS, 2048^3, {args.threads} threads): {peak:.1f} GFLOP/s")
        fma = fma_peak(args.threads)
    if fma is not None:
        print(f"FMA peak (bench/fma_peak.c, registers only, {args.threads} threads): {fma:.1f} GFLOP/s; "
              f"the sgemm reaches {100 * peak / fma:.0f}% of it")
    if bf16 and not cuda:
        from gemm_bf16 import bf16_ceiling
        unit, bpeak = bf16_ceiling(args.threads)
        if bpeak:  # the step's FLOP/s are then reported against the bf16 GEMM's ceiling
            print(f"{unit} peak ({args.threads} threads): {bpeak:.1f} GFLOP/s")
            peak = bpeak
        print(f"dtype bfloat16: cgad and torch under autocast, cgad32 = cgad float32; load average "
              f"{os.getloadavg()[0]:.1f}")
    print()
    mem_label = "dev MiB" if cuda else "RSS MiB"
    header = f"{'config':<6} {'impl':<8} {'ms/step':>9} {'tok/s':>10} {'GFLOP/s':>8} {'%peak':>6} {mem_label:>8} {'loss0':>8}"
    print(header)
    print("-" * len(header))
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        B, T = cfg[4], cfg[5]
        with tempfile.TemporaryDirectory() as tmp:
            weights = os.path.join(tmp, "weights.npz")
            save_weights(cfg, weights)
            results = {impl: [] for impl in impls}
            for _ in range(args.rounds):
                for impl in impls:
                    results[impl].append(spawn(impl, name, weights, args))
        summary = {}
        for impl in impls:
            runs = results[impl]
            ms = min(statistics.median(r["times"]) for r in runs) * 1e3
            rss = max(r["rss_mib"] for r in runs)
            gflops = flops_per_step(cfg) / (ms / 1e3) / 1e9
            summary[impl] = (ms, rss)
            print(f"{name:<6} {impl:<8} {ms:9.1f} {B * T / (ms / 1e3):10.0f} {gflops:8.1f} {100 * gflops / peak:5.1f}% "
                  f"{rss:8.0f} {runs[0]['losses'][0]:8.4f}")
        for ref in impls[1:]:
            speed = summary[ref][0] / summary["cgad"][0]
            mem = summary["cgad"][1] / summary[ref][1]
            print(f"{name:<6} cgad/{ref}: {speed:.2f}x tok/s, {mem:.2f}x peak {'device memory' if cuda else 'RSS'}")
            target = (TARGETS_CUDA if cuda else TARGETS_BF16 if bf16 else TARGETS).get(ref, {}).get(name)
            if target is not None:
                # What the target asks of the machine: the step time it implies, as a share of the
                # measured ceilings (over 100% of the FMA peak cannot be reached by any engine).
                need_ms = summary[ref][0] / target
                need = flops_per_step(cfg) / (need_ms / 1e3) / 1e9
                fma_share = f", {100 * need / fma:.0f}% of the FMA peak" if fma else ""
                print(f"{name:<6} target {target:.1f}x {ref}: {need_ms:.1f} ms/step = {need:.1f} GFLOP/s, "
                      f"{100 * need / peak:.0f}% of the {'bf16' if bf16 else 'sgemm'} peak{fma_share}")
        if cuda and name in TARGET_CUDA_TOK_S:
            tok_s = B * T / (summary["cgad"][0] / 1e3)
            print(f"{name:<6} target {TARGET_CUDA_TOK_S[name]:,} tok/s: cgad {tok_s:,.0f} tok/s "
                  f"({'met' if tok_s >= TARGET_CUDA_TOK_S[name] else 'not met'})")
        print()


if __name__ == "__main__":
    main()
