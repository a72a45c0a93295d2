"""Sample text from a trained run (--ckpt RUN_DIR or a ckpt-<step> folder; default: the run in
`out`) or from GPT-2 weights (--pretrained PATH: a Hugging Face folder or .safetensors file;
needs the GPT-2 BPE vocabulary). The first sample is printed as it is generated; a summary line
(tokens, seconds, tok/s) goes to stderr."""
import sys

import cgad
from cgad import checkpoint
from cgad.cli import (ArgumentParser, UsageError, check_range, explain_missing_vocab,
                      resolve_device, run_main, tokenizer_from_record)
from cgad.models.gpt import GPT, GPTConfig
from cgad.sampling import DEFAULTS, generate_options, stream_samples, write_now
from cgad.tokenizers import load_gpt2


def build_parser():
    """The command line."""
    p = ArgumentParser(description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--ckpt", help="a run folder (its latest checkpoint) or a ckpt-<step> "
                                    "folder (default: out)")
    src.add_argument("--pretrained", help="GPT-2 weights: a Hugging Face folder "
                                          "(config.json + model.safetensors) or a .safetensors")
    p.add_argument("--prompt", default=None, help="text to continue (default: start of text)")
    p.add_argument("--num-samples", type=int, default=DEFAULTS["num_samples"],
                   help=f"how many samples (default {DEFAULTS['num_samples']})")
    p.add_argument("--max-new-tokens", type=int, default=DEFAULTS["max_new_tokens"],
                   help=f"tokens per sample (default {DEFAULTS['max_new_tokens']})")
    p.add_argument("--temperature", type=float, default=DEFAULTS["temperature"],
                   help="softmax temperature; lower is more conservative, 0 is greedy "
                        f"(default {DEFAULTS['temperature']})")
    p.add_argument("--top-k", type=int, default=DEFAULTS["top_k"],
                   help=f"sample among the k likeliest tokens; 0 for all (default "
                        f"{DEFAULTS['top_k']})")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, test, or auto: cuda "
                                                    "when available (default auto)")
    p.add_argument("--vocab-dir", help="folder with GPT-2's encoder.json and vocab.bpe (a run "
                                       "records where its vocabulary came from)")
    return p


def load_model(args):
    """(model, tokenizer) from --pretrained or --ckpt."""
    if args.pretrained:
        return (GPT.from_pretrained(args.pretrained),
                explain_missing_vocab(lambda: load_gpt2(args.vocab_dir)))
    ckpt_dir = checkpoint.resolve_checkpoint(args.ckpt or "out")
    state = checkpoint.read_state(ckpt_dir)
    if state.get("tokenizer") is None:
        raise UsageError(f"{ckpt_dir} records no tokenizer to decode samples with")
    model = GPT(GPTConfig(**state["model_config"]))
    model_tensors, _, _ = checkpoint.read_checkpoint(ckpt_dir)
    checkpoint.load_model_tensors(model, model_tensors, source=ckpt_dir)
    return model, tokenizer_from_record(state["tokenizer"], args.vocab_dir)


def main(argv=None):
    args = build_parser().parse_args(argv)
    check_range([("--num-samples", args.num_samples, 1, None),
                 ("--max-new-tokens", args.max_new_tokens, 0, None)])
    try:
        temperature, top_k = generate_options(args.temperature, args.top_k)
    except ValueError as e:
        raise UsageError(str(e)) from None
    device = resolve_device(args.device)
    model, tokenizer = load_model(args)
    model.to(device)
    model.eval()
    cgad.manual_seed(args.seed)
    _, summary = stream_samples(model, tokenizer, write_now, args.prompt, args.num_samples,
                                args.max_new_tokens, temperature=temperature, top_k=top_k,
                                device=device)
    # on stderr, so that stdout holds the samples alone (`sample.py > samples.txt`)
    print(summary, file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
