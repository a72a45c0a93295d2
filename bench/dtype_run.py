"""train/gpt2.py's default run in float32 and under bf16 autocast, side by side: the validation
loss at every evaluation, the final one, the median step time and tok/s, and whether the two end
within 0.03 of each other (issue 21's check that bf16 mixed precision trains as float32 does).

Usage: python bench/dtype_run.py [--repeat 1] [-- extra train/gpt2.py flags, e.g. --max-steps 500]
Takes minutes: each repeat is one full training run per dtype, alternating.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2_PY = os.path.join(ROOT, "train", "gpt2.py")
STEP_RE = re.compile(r"^step +\d+ \| loss: [\d.]+ \| lr [\d.e+-]+ \| norm: [\d.]+ \| dt: ([\d.]+)ms \| "
                     r"tok/sec: ([\d.]+)")
VAL_RE = re.compile(r"^validation loss: ([\d.]+)")


def run(dtype, out, extra):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, GPT2_PY, "--dtype", dtype, "--out", out, "--num-samples", "0", *extra],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"train/gpt2.py --dtype {dtype} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    dts, toks, vals = [], [], []
    for line in proc.stdout.splitlines():
        if m := STEP_RE.match(line):
            dts.append(float(m.group(1)))
            toks.append(float(m.group(2)))
        elif m := VAL_RE.match(line):
            vals.append(float(m.group(1)))
    if not vals or not dts:
        sys.exit(f"no step or validation lines in the output of --dtype {dtype}:\n{proc.stdout[-2000:]}")
    return {"wall": wall, "dt": statistics.median(dts[1:] or dts), "tok": statistics.median(toks[1:] or toks),
            "vals": vals}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=1, help="runs per dtype, alternating (default 1)")
    p.add_argument("extra", nargs="*", help="flags passed to train/gpt2.py (after --)")
    args = p.parse_args()
    results = {"float32": [], "bfloat16": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for dtype in results:
                res = run(dtype, os.path.join(tmp, f"{dtype}-{r}"), args.extra)
                results[dtype].append(res)
                print(f"run {r} {dtype:>8}: final validation loss {res['vals'][-1]:.4f}, median step "
                      f"{res['dt']:.2f} ms, {res['tok']:.0f} tok/s, {res['wall']:.0f} s in all", flush=True)
    f32, b16 = results["float32"][-1], results["bfloat16"][-1]
    print("\nvalidation loss at each evaluation (last run of each):")
    print(" eval |  float32 | bfloat16 |   diff")
    for i, (a, b) in enumerate(zip(f32["vals"], b16["vals"])):
        print(f"{i:5d} | {a:8.4f} | {b:8.4f} | {b - a:+.4f}")
    med = {k: statistics.median(r["tok"] for r in v) for k, v in results.items()}
    diff = abs(b16["vals"][-1] - f32["vals"][-1])
    print(f"\nmedian tok/s: float32 {med['float32']:.0f}, bfloat16 {med['bfloat16']:.0f} "
          f"({med['bfloat16'] / med['float32']:.2f}x)")
    print(f"final validation losses differ by {diff:.4f}: {'within' if diff <= 0.03 else 'NOT within'} 0.03")
    sys.exit(0 if diff <= 0.03 else 1)


if __name__ == "__main__":
    main()
