"""Generation speed: GPT-2 124M (random weights), cgad with and without its key/value cache beside
Hugging Face transformers' generate (its own KV cache, the same weights copied over, the same
sampling settings, min_new_tokens so that it never stops early), float32, in one run.

    pip install ".[bench]"      # the pinned transformers (and torch) it compares against
    python bench/generate.py    # batch 1 and 8, 200 and 1000 new tokens, 2 threads

tok/s counts every new token of every sequence (B * new tokens per second, the prompt's one
token not counted), wall time of the whole call (prefill included). The implementations
alternate round by round and the median of the rounds is printed, with the spread, and the load
average after each row (the machine may be shared). The ceiling is the bytes of weights one
decode step reads over the machine's streaming read bandwidth (bench/stream_read.c, compiled and
run here), the limit of batch-1 decoding. --bf16 adds cgad under cgad.autocast (the decode step
reads bf16 copies of the weight matrices, half the bytes), reported apart from float32.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

import cgad
from cgad.models.gpt import GPT, GPTConfig
from c_bench import run_c_bench


def stream_bandwidth(threads):
    """GB/s of bench/stream_read.c on `threads` threads, or None without a C compiler."""
    return run_c_bench("stream_read", ["-march=native"], threads)


def hf_model(model):
    """transformers' GPT2LMHeadModel holding cgad model's weights (Conv1D layers take W^T)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = model.config
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                                    n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                                    attn_pdrop=0.0))
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    sd = {}
    for name, p in model.state_dict().items():
        a = p.numpy()
        sd[name] = torch.from_numpy(np.ascontiguousarray(a.T) if name.endswith(conv1d) else a)
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    # what is left is attn.bias (a mask buffer, in older versions) and nothing else
    assert not unexpected and all(k.endswith("attn.bias") for k in missing), (missing, unexpected)
    return hf.eval()


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--tokens", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=50)
    ap.add_argument("--no-cache-max", type=int, default=200,
                    help="run cgad without its cache only up to this many new tokens (it is quadratic)")
    ap.add_argument("--no-hf", action="store_true", help="cgad only")
    ap.add_argument("--bf16", action="store_true", help="also cgad's cache under cgad.autocast (bf16 weights)")
    args = ap.parse_args()

    cgad.set_num_threads(args.threads)
    cgad.manual_seed(0)
    model = GPT(GPTConfig.preset("gpt2"))
    model.eval()
    impls = {}
    impls["cgad cache"] = lambda idx, n: model.generate(cgad.tensor(idx), n, top_k=args.top_k)
    impls["cgad no cache"] = lambda idx, n: model.generate(cgad.tensor(idx), n, top_k=args.top_k,
                                                           use_cache=False)
    if args.bf16:
        def run_bf16(idx, n):
            with cgad.autocast("cpu"):
                model.generate(cgad.tensor(idx), n, top_k=args.top_k)

        impls["cgad cache bf16"] = run_bf16
    if not args.no_hf:
        import torch
        import transformers

        torch.set_num_threads(args.threads)
        hf = hf_model(model)

        def run_hf(idx, n):
            with torch.no_grad():
                hf.generate(torch.from_numpy(idx), max_new_tokens=n, min_new_tokens=n, do_sample=True,
                            top_k=args.top_k, top_p=1.0, temperature=1.0, use_cache=True,
                            attention_mask=torch.ones(idx.shape, dtype=torch.long), pad_token_id=0)

        impls[f"transformers {transformers.__version__}"] = run_hf

    weights = sum(p.numel() for name, p in model.named_parameters() if "wpe" not in name)  # wte read as lm_head
    bytes_per_token = 4 * weights
    bw = stream_bandwidth(args.threads)
    load = os.getloadavg()
    print(f"GPT-2 124M, float32, {args.threads} threads, top_k {args.top_k}; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (median of {args.rounds} rounds, [min, max])")
    if bw:
        print(f"streaming read {bw:.1f} GB/s; one decode step reads {bytes_per_token / 1e9:.3f} GB of weights: "
              f"batch-1 ceiling {bw * 1e9 / bytes_per_token:.1f} tok/s (plus the KV cache's bytes)")
    sys.stdout.flush()

    for B in args.batch:
        for n in args.tokens:
            idx = np.zeros((B, 1), dtype=np.int64)
            names = [k for k in impls if not (k == "cgad no cache" and n > args.no_cache_max)]
            for name in names:  # warm-up: allocator caches, lazy imports, thread pools
                impls[name](idx, 4)
            times = {k: [] for k in names}
            for _ in range(args.rounds):
                for name in names:
                    times[name].append(timed(lambda: impls[name](idx, n)))
            row = []
            for name in names:
                rates = [B * n / t for t in times[name]]
                row.append(f"{name} {statistics.median(rates):7.1f} [{min(rates):.1f}, {max(rates):.1f}]")
            ref = [k for k in names if k.startswith("transformers")]
            ratio = ""
            for name in ("cgad cache", "cgad cache bf16") if ref else ():
                if name in names:
                    # the ratio of the medians, and the median of each round's ratio (runs next to
                    # each other in time share the machine's load)
                    paired = statistics.median(h / c for h, c in zip(times[ref[0]], times[name]))
                    ratio += (f"  {name[5:]}/transformers {statistics.median(times[ref[0]]) / statistics.median(times[name]):.2f}x"
                              f" (paired {paired:.2f}x)")
            load = os.getloadavg()
            print(f"B={B} new={n}: " + " | ".join(row) + " tok/s" + ratio + f"  (load {load[0]:.1f})")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
