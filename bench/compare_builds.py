"""Times the same cgad training step under two installs of cgad (say the last release's build and
this checkout's), alternating them round by round, so that a refactor can show it left the speed
as it was. Each run is bench/train_step.py's cgad worker in a subprocess of the given Python.

Usage: python bench/compare_builds.py OLD_PYTHON NEW_PYTHON [--configs tiny,char] [--rounds 3]
prints, per config, each build's median ms/step per round, the median over rounds, the spread
between rounds of the same build, and whether the step-0 losses are identical.
"""
import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from train_step import CONFIGS, save_weights, spawn  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--configs", default="tiny,char,d6,gpt2")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="bfloat16: both builds' steps under cgad.autocast")
    args = ap.parse_args()
    print(f"{'config':<6} {'build':<4} {'ms/step per round':<32} {'median':>8} {'spread':>7}")
    for name in args.configs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            weights = os.path.join(tmp, "weights.npz")
            save_weights(CONFIGS[name], weights)
            runs = {"old": [], "new": []}
            for _ in range(args.rounds):
                for build in ("old", "new"):
                    runs[build].append(spawn("cgad", name, weights, args, python=getattr(args, build)))
        for build in ("old", "new"):
            ms = [statistics.median(r["times"]) * 1e3 for r in runs[build]]
            print(f"{name:<6} {build:<4} {' '.join(f'{m:9.1f}' for m in ms):<32} {statistics.median(ms):8.1f} "
                  f"{max(ms) - min(ms):7.1f}")
        same = all(a["losses"] == b["losses"] for a, b in zip(runs["old"], runs["new"]))
        print(f"{name:<6} losses of every step identical across builds: {same}")


if __name__ == "__main__":
    main()
