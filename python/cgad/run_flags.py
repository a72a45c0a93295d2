"""train/gpt2.py's flags: their defaults (per model size, and 0 always meaning 0), their ranges,
and on --resume which of them must equal the run's and which may change."""
from cgad.cli import UsageError, check_range
from cgad.models.gpt import GPTConfig
from cgad.sampling import DEFAULTS as SAMPLE_DEFAULTS
from cgad.sampling import generate_options

# -B / -T per preset, sized for a CPU; the GPT-2 sizes use their full context
DEFAULT_BT = {"tiny": (16, 128), "mini": (8, 256), "gpt2": (4, 1024), "gpt2-medium": (2, 1024),
              "gpt2-large": (1, 1024), "gpt2-xl": (1, 1024)}
SMALL_PRESETS = ("tiny", "mini")
FINETUNE_LR = 3e-5  # nanoGPT's finetune_shakespeare rate, the default with --init-from
# on --resume these must equal the run's (they define the model, its data or its optimizer);
# every other flag may change and is printed when it does
FIXED = {"model": "--model", "init_from": "--init-from", "T": "-T", "B": "-B",
         "total_batch_size": "--total-batch-size", "data": "--data", "tokenizer": "--tokenizer",
         "seed": "--seed", "weight_decay": "--weight-decay"}
NOT_SAVED = ("resume", "check", "overwrite", "out")  # the folder may be moved or copied


def resolve_defaults(args, model_config, ranks=1):
    """Fill the unset flags from the defaults (after --resume filled the run's own); under
    mpiexec the default --total-batch-size is B*T*ranks (one micro-step per rank)."""
    d = vars(args)
    preset = d["model"] or ("tiny" if d["init_from"] is None else None)
    d["model"] = preset
    default_b, default_t = DEFAULT_BT.get(preset or _matching_preset(model_config),
                                          (1, model_config.block_size))
    for key, default in (("B", default_b), ("T", min(default_t, model_config.block_size)),
                         ("max_steps", 2500), ("weight_decay", 0.1), ("grad_clip", 1.0),
                         ("val_every", 50), ("val_steps", 20), ("sample_every", 0),
                         ("log_every", 1), ("out", "out"), ("seed", 1337), ("device", "auto"),
                         ("on_nan", "stop"), ("dtype", "float32"), ("tf32", False), *SAMPLE_DEFAULTS.items()):
        if d[key] is None:
            d[key] = default
    if d["lr"] is None:
        d["lr"] = FINETUNE_LR if d["init_from"] else 1e-3 if preset in SMALL_PRESETS else 6e-4
    for key, default in (("total_batch_size", d["B"] * d["T"] * ranks), ("min_lr", d["lr"] * 0.1),
                         ("warmup_steps", min(100, d["max_steps"] // 10)),
                         ("ckpt_every", d["val_every"] or 50)):
        if d[key] is None:
            d[key] = default


def _matching_preset(config):
    for name, (n_layer, n_head, n_embd, _) in GPTConfig.PRESETS.items():
        if (config.n_layer, config.n_head, config.n_embd) == (n_layer, n_head, n_embd):
            return name
    return None


def check_flags(args, model_config, ranks=1):
    """UsageError naming the flag for any value out of range; 0 always means 0."""
    check_range([
        ("-B", args.B, 1, None), ("-T", args.T, 1, None),
        ("--total-batch-size", args.total_batch_size, 1, None),
        ("--max-steps", args.max_steps, 0, "evaluate and sample only"),
        ("--lr", args.lr, 0, None), ("--min-lr", args.min_lr, 0, None),
        ("--warmup-steps", args.warmup_steps, 0, None),
        ("--weight-decay", args.weight_decay, 0, None),
        ("--grad-clip", args.grad_clip, 0, "no clipping"),
        ("--val-every", args.val_every, 0, "evaluate only at the end"),
        ("--val-steps", args.val_steps, 0, "no evaluation"),
        ("--ckpt-every", args.ckpt_every, 0, "only after the last step"),
        ("--log-every", args.log_every, 0, "no step lines"),
        ("--sample-every", args.sample_every, 0, "only at the end"),
        ("--num-samples", args.num_samples, 0, "no samples"),
        ("--max-new-tokens", args.max_new_tokens, 0, None),
        ("--threads", args.threads, 1, None)])
    try:
        generate_options(args.temperature, args.top_k)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.T > model_config.block_size:
        raise UsageError(f"-T {args.T} exceeds the model's block size "
                         f"{model_config.block_size}")
    if args.total_batch_size % (args.B * args.T * ranks):
        per_step = f"B*T*ranks = {args.B}*{args.T}*{ranks}" if ranks > 1 else "B*T"
        raise UsageError(f"--total-batch-size {args.total_batch_size} is not a multiple of "
                         f"{per_step} = {args.B * args.T * ranks}")
    if args.init_from and args.tokenizer == "char":
        raise UsageError("--init-from starts from GPT-2 weights, which need GPT-2 BPE; "
                         "--tokenizer char does not fit them")


def _show(key, value):
    if value is None:
        return {"data": "the embedded Tiny Shakespeare", "init_from": "none (random init)",
                "model": "none (--init-from)"}.get(key, "unset")
    return str(value)


def merge_saved_args(args, given, saved_args, log):
    """On --resume: the run's saved flags fill the ones not given; a given flag that defines
    the model or its data must equal the saved one; the others are printed when they change.
    Paths (--data, --init-from) are compared absolute, as they are saved."""
    for key in saved_args:  # in the command line's order
        if key in NOT_SAVED or key not in given:
            continue
        new, old = getattr(args, key), saved_args[key]
        if new == old or (key == "tokenizer" and new == "auto"):
            continue
        flag = FIXED.get(key) or "--" + key.replace("_", "-")
        if key in FIXED:
            raise UsageError(f"--resume: {flag} {_show(key, new)} differs from the run's "
                             f"{_show(key, old)}; it defines the run (drop the flag to keep "
                             f"it, or start a new run in another --out)")
        note = ""
        if key == "max_steps":
            note = (f" (the cosine decay is re-stretched to end at step {new}: the lr from "
                    f"here on differs from the {old}-step schedule's)")
        log(f"resume: {flag} changed from {_show(key, old)} to {_show(key, new)}{note}")
    for key, value in saved_args.items():
        if key not in NOT_SAVED and getattr(args, key, None) is None:
            setattr(args, key, value)
