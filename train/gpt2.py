"""Train GPT-2 on cgad: `python train/gpt2.py` trains a tiny char-level model on the embedded
Tiny Shakespeare, offline, in a few minutes on a CPU; flags scale it up to real data and GPT-2
sizes. A thin command line over cgad.trainer.Trainer.
"""
import argparse
import json
import os
import shutil
import sys

import cgad
from cgad import checkpoint
from cgad.checks import run_checks
from cgad.data import (TINY_SHAKESPEARE, DataLoaderLite, split_shard_files,
                       write_text_shards)
from cgad.lr import warmup_cosine
from cgad.models.gpt import GPT, GPTConfig
from cgad.sampling import sample_text
from cgad.tokenizers import get_tokenizer, load_tokenizer_file
from cgad.trainer import NonFiniteError, Trainer

# -B / -T per preset, sized for a CPU; the GPT-2 sizes use their full context
DEFAULT_BT = {"tiny": (16, 128), "mini": (8, 256), "gpt2": (4, 1024), "gpt2-medium": (2, 1024),
              "gpt2-large": (1, 1024), "gpt2-xl": (1, 1024)}
SMALL_PRESETS = ("tiny", "mini")


def build_parser():
    """The command line; every default is None here and resolved in resolve_defaults(), so that
    --resume can tell given flags from the saved run's."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", help="training data: a text file (tokenized and split 90/10 into the run "
                     "folder), a folder of .bin shards, a shard glob or one .bin file (shards "
                     "with 'val' in the name are validation). Default: the embedded Tiny "
                     "Shakespeare, char-level")
    a("--tokenizer", choices=("auto", "gpt2", "char"),
      help="for text data: gpt2 BPE, char-level, or auto (gpt2 when its vocab files are found, "
           "else char, saying so). Default: auto; char for the embedded text")
    a("--vocab-dir", help="folder with GPT-2's encoder.json and vocab.bpe (also read from "
                          "$CGAD_VOCAB_DIR or tiktoken's cache)")
    a("--model", choices=tuple(GPTConfig.PRESETS), help="model size preset. Default: tiny")
    a("-B", "--batch-size", type=int, dest="B", help="sequences per micro-batch "
                                                     "(default per preset, 16 for tiny)")
    a("-T", "--seq-len", type=int, dest="T", help="tokens per sequence (default: the "
                                                  "preset's block size)")
    a("--total-batch-size", type=int, help="tokens per optimizer step; a multiple of B*T, the "
                                           "rest is gradient accumulation. Default: B*T")
    a("--max-steps", type=int, help="optimizer steps to train for (default 2500)")
    a("--lr", type=float, help="peak learning rate (default 1e-3 for tiny/mini, 6e-4 for the "
                               "GPT-2 sizes)")
    a("--min-lr", type=float, help="final learning rate of the cosine decay (default lr/10)")
    a("--warmup-steps", type=int, help="linear warmup steps before the cosine decay (default "
                                       "10%% of --max-steps, at most 100)")
    a("--weight-decay", type=float, help="AdamW weight decay of 2-D weights (default 0.1)")
    a("--grad-clip", type=float, help="clip the global gradient norm to this; 0 disables "
                                      "(default 1.0)")
    a("--val-every", type=int, help="evaluate every N steps, and at the start and end "
                                    "(default 50)")
    a("--val-steps", type=int, help="batches per evaluation (default 20)")
    a("--ckpt-every", type=int, help="checkpoint every N steps and after the last one; 0 "
                                     "disables (default: --val-every)")
    a("--sample-every", type=int, help="print a sample every N steps; 0: only at the end "
                                       "(default 0)")
    a("--prompt", help="text to start samples from (default: a newline, or end-of-text for "
                       "GPT-2 BPE)")
    a("--num-samples", type=int, help="samples to print each time (default 1)")
    a("--max-new-tokens", type=int, help="tokens per sample (default 300)")
    a("--out", help="run folder: metrics.jsonl, loss.png, config.json, checkpoints "
                    "(default out)")
    a("--resume", action="store_true", help="continue the run found in --out from its latest "
                                            "checkpoint; flags not given are the run's own")
    a("--on-nan", choices=("stop", "skip"),
      help="a NaN or infinite loss or gradient norm: stop the run naming the step, keeping the "
           "last good checkpoint, or skip that update with a warning and go on, stopping after "
           f"{Trainer.max_skips_in_a_row} such steps in a row (default stop)")
    a("--seed", type=int, help="random seed for init, data-independent randomness and "
                               "sampling (default 1337)")
    a("--device", help="cpu, cuda or auto: cuda when available (default auto)")
    a("--threads", type=int, help="CPU threads (default: cgad's; on --resume, the run's)")
    a("--check", action="store_true", help="run the debugging kit on this configuration "
                                           "instead of training: shifted targets, gradients "
                                           "reach every parameter finite and nonzero, every "
                                           "parameter moves in one step, one batch overfits")
    return p


def resolve_defaults(args, saved=None):
    """Fill unset flags from the saved run's (on --resume), then from the defaults above."""
    for key, value in (saved or {}).items():
        if getattr(args, key, None) is None and key not in ("resume", "check"):
            setattr(args, key, value)
    d = vars(args)
    d["model"] = d["model"] or "tiny"
    cfg = GPTConfig.preset(d["model"])
    default_b, default_t = DEFAULT_BT[d["model"]]
    d["B"] = d["B"] or default_b
    d["T"] = d["T"] or min(default_t, cfg.block_size)
    d["total_batch_size"] = d["total_batch_size"] or d["B"] * d["T"]
    d["max_steps"] = d["max_steps"] if d["max_steps"] is not None else 2500
    d["lr"] = d["lr"] or (1e-3 if d["model"] in SMALL_PRESETS else 6e-4)
    d["min_lr"] = d["min_lr"] if d["min_lr"] is not None else d["lr"] * 0.1
    if d["warmup_steps"] is None:
        d["warmup_steps"] = min(100, d["max_steps"] // 10)
    for key, default in (("weight_decay", 0.1), ("grad_clip", 1.0), ("val_every", 50),
                         ("val_steps", 20), ("sample_every", 0), ("num_samples", 1),
                         ("max_new_tokens", 300), ("out", "out"), ("seed", 1337),
                         ("device", "auto"), ("on_nan", "stop")):
        if d[key] is None:
            d[key] = default
    if d["ckpt_every"] is None:
        d["ckpt_every"] = d["val_every"]
    if d["device"] == "auto":
        d["device"] = "cuda" if cgad.cuda.is_available() else "cpu"
    if d["T"] > cfg.block_size:
        raise SystemExit(f"error: -T {d['T']} exceeds the {d['model']} block size "
                         f"{cfg.block_size}")
    if d["total_batch_size"] % (d["B"] * d["T"]):
        raise SystemExit(f"error: --total-batch-size {d['total_batch_size']} is not a multiple "
                         f"of B*T = {d['B'] * d['T']}")
    return args


def prepare_data(args, log):
    """(train files, val files, tokenizer or None) for --data, tokenizing text into the run
    folder."""
    if args.data is None or (os.path.isfile(args.data) and not args.data.endswith(".bin")):
        path = args.data or TINY_SHAKESPEARE
        with open(path, encoding="utf-8") as f:
            text = f.read()
        name = args.tokenizer or "auto"
        if args.data is None and name == "auto":
            name = "char"  # the embedded default is char-level whatever tiktoken has cached
        tokenizer = get_tokenizer(name, args.vocab_dir, text=text, log=log)
        log(f"data: {path} ({len(text):,} characters), tokenizer {tokenizer.name} "
            f"(vocab {tokenizer.vocab_size})")
        train, val = write_text_shards(text, tokenizer, os.path.join(args.out, "data"), "text")
        return train, val, tokenizer
    train, val = split_shard_files(args.data)
    folder = args.data if os.path.isdir(args.data) else os.path.dirname(args.data)
    spec = os.path.join(folder, "tokenizer.json")
    try:
        tokenizer = load_tokenizer_file(spec, args.vocab_dir) if os.path.isfile(spec) \
            else get_tokenizer("gpt2", args.vocab_dir)  # llm.c's shards are GPT-2 tokens
    except (RuntimeError, FileNotFoundError) as e:
        log(f"no tokenizer for sampling ({e}); training on ids alone")
        tokenizer = None
    log(f"data: {len(train)} train and {len(val)} val shard(s) from {args.data}")
    return train, val, tokenizer


def clear_run(out, log):
    """Remove an earlier run's checkpoints and metrics from `out`, so a fresh run starts clean."""
    if not os.path.isdir(out):
        return
    names = [n for n in os.listdir(out)
             if n.startswith("ckpt-") or n in ("latest", "metrics.jsonl", "loss.png")]
    if names:
        log(f"{out} holds an earlier run: starting over (--resume continues it)")
    for name in names:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def read_run_config(out):
    """The run folder's config.json; ValueError naming it when it is damaged."""
    path = os.path.join(out, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        if not isinstance(config.get("args"), dict):
            raise ValueError("no 'args' entry")
    except (ValueError, AttributeError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise ValueError(f"{path}: corrupt run config: {e}") from None
    return config


def write_run_config(out, config):
    """Replace config.json whole (a kill mid-write must not leave --resume a broken file)."""
    path = os.path.join(out, "config.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)


def main(argv=None):
    args = build_parser().parse_args(argv)
    log = lambda line: print(line, flush=True)  # noqa: E731
    out = args.out or "out"
    state = None
    if args.resume:
        state = checkpoint.read_state(checkpoint.resolve_checkpoint(out))
        resolve_defaults(args, read_run_config(out)["args"])
        if args.threads is None:
            args.threads = state.get("threads")  # reductions differ across thread counts
    else:
        resolve_defaults(args)
    if args.threads:
        cgad.set_num_threads(args.threads)
    if not args.resume and not args.check:
        clear_run(args.out, log)

    train_files, val_files, tokenizer = prepare_data(args, log)
    cgad.manual_seed(args.seed)
    vocab_size = tokenizer.vocab_size if tokenizer is not None else 50257
    config = GPTConfig.preset(args.model, vocab_size=vocab_size)
    model = GPT(config).to(args.device)
    optimizer = model.configure_optimizers(args.weight_decay, args.lr)
    train_loader = DataLoaderLite(args.B, args.T, train_files, vocab_size=vocab_size)
    val_loader = DataLoaderLite(args.B, args.T, val_files, vocab_size=vocab_size) \
        if val_files else None
    log(f"model: {args.model} ({model.num_parameters() / 1e6:.2f}M parameters, "
        f"{config.n_layer} layers, {config.n_head} heads, {config.n_embd} wide), "
        f"device {args.device}, {cgad.get_num_threads()} thread(s)")

    if args.check:
        ok = run_checks(model, optimizer, train_loader, log=log)
        return 0 if ok else 1

    grad_accum = args.total_batch_size // (args.B * args.T)
    log(f"batch: {args.total_batch_size} tokens per step = B {args.B} x T {args.T} x "
        f"{grad_accum} accumulation step(s); {args.max_steps} steps")
    os.makedirs(args.out, exist_ok=True)
    run_config = {"args": {k: v for k, v in vars(args).items() if k not in ("resume", "check")},
                  "model": config.to_dict(),
                  "tokenizer": tokenizer.spec() if tokenizer is not None else None}
    write_run_config(args.out, run_config)

    def sample_fn(trainer):
        cgad.manual_seed(args.seed + trainer.step)
        texts = sample_text(model, tokenizer, args.prompt, args.num_samples,
                            args.max_new_tokens, top_k=50, device=args.device)
        return "\n".join(f"--- sample {i} at step {trainer.step}:\n{t}"
                         for i, t in enumerate(texts))

    trainer = Trainer(
        model, optimizer, train_loader, val_loader, max_steps=args.max_steps,
        grad_accum_steps=grad_accum,
        lr_schedule=warmup_cosine(args.lr, args.min_lr, args.warmup_steps, args.max_steps),
        grad_clip=args.grad_clip, val_every=args.val_every, val_steps=args.val_steps,
        ckpt_every=args.ckpt_every or None, out_dir=args.out,
        sample_every=args.sample_every or None,
        sample_fn=sample_fn if tokenizer is not None else None,
        extra_state={"model_config": config.to_dict(), "tokenizer": run_config["tokenizer"]},
        log=log, on_nan=args.on_nan)
    if state is not None:
        trainer.load_checkpoint(out)
        log(f"resumed {out} at step {trainer.step}")
    metrics = trainer.run()
    if tokenizer is not None:
        log(sample_fn(trainer))
    if "val_loss" in metrics:
        log(f"final validation loss: {metrics['val_loss']:.4f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    # a wrong path, a damaged checkpoint, shard or config (the messages name the file), or a
    # run stopped by a NaN loss: a user's problem to fix, not a crash
    except (FileNotFoundError, ValueError, NonFiniteError) as e:
        sys.exit(f"error: {e}")
