"""Times each fused op of cgad, forward and forward + backward, side by side with torch on the
same inputs in the same run, and prints ms and the achieved GB/s (memory-bound ops) or GFLOP/s
(attention, linear). Sizes are those of the char/d6 training configs.

Usage: python bench/ops.py [--threads N] [--reps N] [--ops layernorm,gelu,...]
"""
import argparse
import os
import time

import numpy as np

import cgad
import cgad.nn.functional as F

BT, C, V = 3072, 384, 50257  # rows of activations (B*T), width, GPT-2 vocabulary


def best_ms(fn, reps):
    fn()  # warm-up: first-touch pages, thread pools
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def cases(rng):
    """name: (unit, work per forward, work per forward+backward, make(lib) -> (fwd, fwd_bwd))."""
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    x_ln, w_ln, b_ln = f32(BT, C), f32(C), f32(C)
    x_fc = f32(BT, 4 * C)
    logits, targets = f32(2048, V), rng.integers(0, V, 2048)
    qkv = [f32(12, 6, 256, 64) for _ in range(3)]
    x_lin, w_lin, b_lin = f32(BT, C), f32(4 * C, C) * 0.02, f32(4 * C)
    wte, ids = f32(V, C), rng.integers(0, V, (8, 256))
    params = [f32(*s) for s in [(V, C)] + [(4 * C, C), (C, 4 * C), (3 * C, C), (C, C)] * 6]
    grads = [f32(*p.shape) for p in params]
    n_params = sum(p.size for p in params)
    attn_flops = 4 * 12 * 6 * 256 * 256 * 64 / 2  # QK^T and PV over the causal half
    gb = lambda *arrays: sum(a.nbytes for a in arrays) / 1e9  # noqa: E731

    def graph_op(lib, f, inputs, grad_of):
        """(forward, forward+backward) closures of f over leaves made once from `inputs`."""
        ts = [lib.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(inputs)]

        def fwd():
            with lib.no_grad():
                f(*ts)

        def fwd_bwd():
            for t in ts:
                t.grad = None
            f(*ts).sum().backward()
        return fwd, fwd_bwd

    def make_layernorm(lib, fn):
        return graph_op(lib, lambda x, w, b: fn.layer_norm(x, (C,), w, b), [x_ln, w_ln, b_ln], (0, 1, 2))

    def make_gelu(lib, fn):
        return graph_op(lib, lambda x: fn.gelu(x, approximate="tanh"), [x_fc], (0,))

    def make_xent(lib, fn):
        tgt = lib.tensor(targets)
        return graph_op(lib, lambda x: fn.cross_entropy(x, tgt), [logits], (0,))

    def make_attention(lib, fn):
        return graph_op(lib, lambda q, k, v: fn.scaled_dot_product_attention(q, k, v, is_causal=True), qkv, (0, 1, 2))

    def make_linear(lib, fn):
        return graph_op(lib, fn.linear, [x_lin, w_lin, b_lin], (0, 1, 2))

    def make_embedding(lib, fn):
        return graph_op(lib, lambda i, w: fn.embedding(i, w), [ids, wte], (1,))

    def make_adamw(lib, fn):
        ps = [lib.tensor(p, requires_grad=True) for p in params]
        for p, g in zip(ps, grads):
            p.grad = lib.tensor(g)
        opt = lib.optim.AdamW(ps, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
        opt.step()  # creates the state
        return opt.step, opt.step

    def make_clip(lib, fn):
        ps = [lib.tensor(p, requires_grad=True) for p in params]
        for p, g in zip(ps, grads):
            p.grad = lib.tensor(g * 1e-3)  # below max_norm: the norm alone, as in most steps
        clip = lambda: lib.nn.utils.clip_grad_norm_(ps, 1.0)  # noqa: E731
        return clip, clip

    return {
        "layernorm": ("GB/s", gb(x_ln, x_ln), gb(x_ln, x_ln, x_ln, x_ln, x_ln), make_layernorm),
        "gelu": ("GB/s", gb(x_fc, x_fc), gb(x_fc, x_fc, x_fc, x_fc), make_gelu),
        "softmax+xent": ("GB/s", gb(logits), gb(logits, logits, logits), make_xent),
        "attention": ("GFLOP/s", attn_flops / 1e9, 3.5 * attn_flops / 1e9, make_attention),
        "linear": ("GFLOP/s", 2 * BT * C * 4 * C / 1e9, 6 * BT * C * 4 * C / 1e9, make_linear),
        "embedding": ("GB/s", gb(ids) + 2048 * C * 4e-9, gb(wte) + 2 * 2048 * C * 4e-9, make_embedding),
        "adamw": ("GB/s", 7 * 4 * n_params / 1e9, 7 * 4 * n_params / 1e9, make_adamw),
        "clip_grad_norm_": ("GB/s", 4 * n_params / 1e9, 4 * n_params / 1e9, make_clip),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--ops", help="comma-separated subset")
    args = ap.parse_args()
    cgad.set_num_threads(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    table = cases(np.random.default_rng(0))
    names = args.ops.split(",") if args.ops else list(table)
    print(f"threads {args.threads}; best of {args.reps}; torch {torch.__version__ if torch else 'not installed'}")
    print(f"{'op':16s} {'pass':8s} {'cgad ms':>9s} {'torch ms':>9s} {'cgad':>9s} {'torch':>9s} {'unit':8s} cgad/torch")
    for name in names:
        unit, work_f, work_fb, make = table[name]
        libs = {"cgad": make(cgad, F)}
        if torch is not None:
            libs["torch"] = make(torch, torch.nn.functional)
        for pass_i, (label, work) in enumerate((("fwd", work_f), ("fwd+bwd", work_fb))):
            if name in ("adamw", "clip_grad_norm_") and pass_i == 1:
                continue  # one pass: the step itself
            ms = {lib: best_ms(fns[pass_i], args.reps) for lib, fns in libs.items()}
            t_ms = ms.get("torch")
            speed = {lib: work / (m / 1e3) for lib, m in ms.items()}
            print(f"{name:16s} {label if name not in ('adamw', 'clip_grad_norm_') else 'step':8s} "
                  f"{ms['cgad']:9.2f} {t_ms if t_ms is not None else float('nan'):9.2f} "
                  f"{speed['cgad']:9.1f} {speed.get('torch', float('nan')):9.1f} {unit:8s} "
                  + (f"{t_ms / ms['cgad']:.2f}x" if t_ms is not None else "-"))


if __name__ == "__main__":
    main()
