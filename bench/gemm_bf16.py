"""The bf16 GEMM on GPT's shapes, side by side: cgad bf16 (the AVX512_BF16 kernel, or whatever
CGAD_BF16_GEMM selects), torch's bf16 matmul (oneDNN) and cgad's float32 GEMM (OpenBLAS sgemm),
as GFLOP/s and as a share of the ceiling of the instruction its kernel runs (`vdpbf16ps`,
bench/bf16_peak.c, or AMX's `tdpbf16ps`, bench/amx_peak.c). The implementations
alternate within each repeat (each timed after two untimed calls of its own) and the median is
kept, so a busy machine slows all of them alike.

Usage: python bench/gemm_bf16.py [--threads 2] [--repeats 7]
(OpenBLAS's own bf16 GEMM, sbgemm, is not a candidate: the vendored scipy-openblas32 build does
not export it; `nm -D libcgad_openblas.so | grep -i sbgemm` is empty.)
"""
import argparse
import os
import statistics
import time

import numpy as np

from c_bench import run_c_bench

# (label, M, N, K, pass): C (M, N) from the pass's operands. "fwd" is linear's x (M, K) @ W^T with
# W (N, K) stored as torch.nn.Linear keeps it; "dx" is the backward's g (M, K) @ W (K, N); "dW"
# is g^T @ x with g stored (K, M).
SHAPES = [
    ("char c_attn fwd", 3072, 1152, 384, "fwd"),
    ("char attn.c_proj fwd", 3072, 384, 384, "fwd"),
    ("char c_fc fwd", 3072, 1536, 384, "fwd"),
    ("char mlp.c_proj fwd", 3072, 384, 1536, "fwd"),
    ("char lm_head fwd (V=65)", 3072, 65, 384, "fwd"),
    ("char c_fc grad_x", 3072, 384, 1536, "dx"),
    ("char c_fc grad_W", 1536, 384, 3072, "dW"),
    ("d6 lm_head fwd (V=50257)", 2048, 50257, 384, "fwd"),
    ("d6 lm_head grad_x", 2048, 384, 50257, "dx"),
    ("gpt2 c_fc fwd (B4 T64)", 256, 3072, 768, "fwd"),
]


def bf16_ceiling(threads):
    """(instruction, GFLOP/s or None) of the instruction cgad's bf16 GEMM runs here: AMX's
    `tdpbf16ps` on loaded tiles (bench/amx_peak.c) for the AMX kernel, else `vdpbf16ps` from
    registers (bench/bf16_peak.c)."""
    import cgad
    if cgad._C.bf16_gemm_impl() == "amx_bf16":
        return "tdpbf16ps", run_c_bench("amx_peak", ["-mamx-tile", "-mamx-bf16"], threads)
    return "vdpbf16ps", run_c_bench("bf16_peak", ["-mavx512f", "-mavx512bf16"], threads)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import cgad
    cgad.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    unit, peak = bf16_ceiling(args.threads)
    print(f"cgad bf16 GEMM: {cgad._C.bf16_gemm_impl()}; {unit} ceiling ({args.threads} threads): "
          f"{peak if peak is not None else 'n/a'} GFLOP/s; load average {os.getloadavg()[0]:.1f}")
    head = f"{'shape':<26} {'M':>5} {'N':>6} {'K':>5} {'cgad bf16':>10} {'torch bf16':>10} {'cgad fp32':>10} {'%ceiling':>8}"
    print(head)
    print("-" * len(head))
    rng = np.random.default_rng(0)
    for label, M, N, K, kind in SHAPES:
        a = rng.standard_normal((K, M) if kind == "dW" else (M, K)).astype(np.float32)
        b = rng.standard_normal((N, K) if kind == "fwd" else (K, N)).astype(np.float32)
        ca, cb = cgad.tensor(a), cgad.tensor(b)
        impls = {"cgad bf16": (ca.bfloat16(), cb.bfloat16()), "cgad fp32": (ca, cb)}
        if torch is not None:
            impls["torch bf16"] = (torch.tensor(a).bfloat16(), torch.tensor(b).bfloat16())

        def run(x, y):
            return (x.transpose(0, 1) if kind == "dW" else x) @ (y.transpose(0, 1) if kind == "fwd" else y)

        times = {k: [] for k in impls}
        for k, (x, y) in impls.items():
            run(x, y)  # warm up: packing buffers, thread pools
        for _ in range(args.repeats):
            for k, (x, y) in impls.items():
                # two untimed calls first: the previous engine's OpenMP threads spin for a while
                # after its call and steal this one's cores (measured: cgad 2.1 ms right after
                # torch, 1.7 ms after itself, on char's c_attn shape)
                run(x, y)
                run(x, y)
                t0 = time.perf_counter()
                run(x, y)
                times[k].append(time.perf_counter() - t0)
        gf = {k: 2 * M * N * K / statistics.median(v) / 1e9 for k, v in times.items()}
        share = f"{100 * gf['cgad bf16'] / peak:7.0f}%" if peak else f"{'n/a':>8}"
        tb = f"{gf['torch bf16']:10.0f}" if "torch bf16" in gf else f"{'n/a':>10}"
        print(f"{label:<26} {M:>5} {N:>6} {K:>5} {gf['cgad bf16']:10.0f} {tb} {gf['cgad fp32']:10.0f} {share}")
    print(f"(GFLOP/s, median of {args.repeats}; load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
