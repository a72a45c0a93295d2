"""Shows that training the tiny GPT-2 holds its memory flat: the caching allocator's os_allocs stop
growing after the first steps and the process's resident memory stays where it is.

Trains GPTConfig.preset("tiny") (vocab 65, char-level size) for --steps steps on random tokens and
prints, every --every steps, the allocator counters and the RSS (VmRSS, and VmHWM: the peak since
the warm-up, reset through /proc/self/clear_refs where the kernel allows it).
Usage: python bench/memory_flat.py [--steps 500] [--every 50] [-B 8] [-T 64]
"""
import argparse
import time

import numpy as np

import cgad
import cgad.nn as nn
from cgad.models.gpt import GPT, GPTConfig
from procfs import reset_peak_rss, status_kib


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5, help="steps before the peak RSS is reset")
    p.add_argument("-B", type=int, default=8)
    p.add_argument("-T", type=int, default=64)
    args = p.parse_args()

    cgad.manual_seed(0)
    model = GPT(GPTConfig.preset("tiny", vocab_size=65))
    opt = model.configure_optimizers(0.1, 1e-3)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 65, (args.B, args.T + 1)) for _ in range(16)]
    print(f"tiny GPT-2: {model.num_parameters() / 1e6:.2f}M parameters, B {args.B} x T {args.T}, "
          f"{args.steps} steps, {cgad.get_num_threads()} thread(s)")
    print(f"{'step':>6} {'loss':>8} {'os_allocs':>10} {'os_MiB':>8} {'cached_MiB':>10} "
          f"{'peak_MiB':>9} {'VmRSS_MiB':>10} {'VmHWM_MiB':>10}")
    rows = []
    t0 = time.perf_counter()
    for step in range(args.steps):
        data = batches[step % len(batches)]
        x, y = cgad.tensor(data[:, :-1]), cgad.tensor(data[:, 1:])
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss_value = loss.item()
        if step + 1 == args.warmup and not reset_peak_rss():
            print("(VmHWM cannot be reset here: it includes start-up)")
        stats = cgad.memory_stats()
        row = (step, loss_value, stats["os_allocs"], stats["os_bytes"] / 2**20,
               stats["cached_bytes"] / 2**20, stats["peak_bytes"] / 2**20,
               status_kib("VmRSS") / 1024, status_kib("VmHWM") / 1024)
        rows.append(row)
        if step % args.every == 0 or step == args.steps - 1 or step < 3:
            print(f"{row[0]:6d} {row[1]:8.4f} {row[2]:10d} {row[3]:8.2f} {row[4]:10.2f} "
                  f"{row[5]:9.2f} {row[6]:10.1f} {row[7]:10.1f}", flush=True)
    dt = time.perf_counter() - t0
    after = rows[min(args.warmup, len(rows) - 1):]
    rss = [r[6] for r in after]
    print(f"{args.steps} steps in {dt:.1f}s; os_allocs from step 2 on: "
          f"{sorted(set(r[2] for r in rows[2:]))}")
    print(f"VmRSS after step {args.warmup}: min {min(rss):.1f} MiB, max {max(rss):.1f} MiB, "
          f"last {rss[-1]:.1f} MiB (spread {max(rss) - min(rss):.2f} MiB); "
          f"VmHWM at the end {rows[-1][7]:.1f} MiB")


if __name__ == "__main__":
    main()
