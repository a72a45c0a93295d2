"""Sample text from a trained run (--ckpt RUN_DIR or a ckpt-<step> folder) or from GPT-2 weights
(--pretrained PATH: a Hugging Face folder or .safetensors file; needs the GPT-2 BPE vocabulary)."""
import argparse
import sys

import cgad
from cgad import checkpoint
from cgad.models.gpt import GPT, GPTConfig
from cgad.sampling import sample_text
from cgad.tokenizers import load_gpt2, tokenizer_from_spec


def build_parser():
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="a run folder (its latest checkpoint) or a ckpt-<step> folder")
    src.add_argument("--pretrained", help="GPT-2 weights: a Hugging Face folder "
                                          "(config.json + model.safetensors) or a .safetensors")
    p.add_argument("--prompt", default=None, help="text to continue (default: start of text)")
    p.add_argument("--num-samples", type=int, default=3, help="how many samples (default 3)")
    p.add_argument("--max-new-tokens", type=int, default=200, help="tokens per sample "
                                                                   "(default 200)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; lower "
                                                                  "is more conservative "
                                                                  "(default 1.0)")
    p.add_argument("--top-k", type=int, default=50, help="sample among the k likeliest tokens; "
                                                         "0 for all (default 50)")
    p.add_argument("--seed", type=int, default=1337, help="random seed (default 1337)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default auto)")
    p.add_argument("--vocab-dir", help="folder with GPT-2's encoder.json and vocab.bpe")
    return p


def load_model(args):
    """(model, tokenizer) from --ckpt or --pretrained."""
    if args.pretrained:
        return GPT.from_pretrained(args.pretrained), load_gpt2(args.vocab_dir)
    ckpt_dir = checkpoint.resolve_checkpoint(args.ckpt)
    state = checkpoint.read_state(ckpt_dir)
    if state.get("tokenizer") is None:
        raise SystemExit(f"error: {ckpt_dir} records no tokenizer to decode samples with")
    model = GPT(GPTConfig(**state["model_config"]))
    model_tensors, _, _ = checkpoint.read_checkpoint(ckpt_dir)
    checkpoint.load_model_tensors(model, model_tensors, source=ckpt_dir)
    return model, tokenizer_from_spec(state["tokenizer"], args.vocab_dir)


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = args.device
    if device == "auto":
        device = "cuda" if cgad.cuda.is_available() else "cpu"
    model, tokenizer = load_model(args)
    model.to(device)
    model.eval()
    cgad.manual_seed(args.seed)
    texts = sample_text(model, tokenizer, args.prompt, args.num_samples, args.max_new_tokens,
                        temperature=args.temperature, top_k=args.top_k or None, device=device)
    for i, text in enumerate(texts):
        print(f"--- sample {i}:\n{text}", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FileNotFoundError as e:  # a wrong path is a user error, not a crash
        sys.exit(f"error: {e}")
