"""Tokenize a text file into llm.c .bin shards for train/gpt2.py --data: the last 10% of the
characters become the validation shard (as nanoGPT splits), documents separated by
`<|endoftext|>` get GPT-2's end-of-text token 50256 before each one (as llm.c's scripts do), and
the tokenizer is recorded beside the shards as tokenizer.json (for GPT-2 BPE with the folder its
vocabulary came from), so that training on them and sampling from that run need no --vocab-dir.
"""
import os
import shlex

from cgad.checkpoint import WriteError, write_json
from cgad.cli import ArgumentParser, UsageError, explain_missing_vocab, run_main, tokenizer_record
from cgad.data import TINY_SHAKESPEARE, write_text_shards
from cgad.run_data import read_text
from cgad.tokenizers import get_tokenizer


def build_parser():
    """The command line."""
    p = ArgumentParser(description=__doc__)
    p.add_argument("--input", default=TINY_SHAKESPEARE,
                   help="UTF-8 text file (default: the embedded Tiny Shakespeare)")
    p.add_argument("--out-dir", default=None,
                   help="folder for the shards (default: data/<input name>)")
    p.add_argument("--tokenizer", choices=("auto", "gpt2", "char"), default="auto",
                   help="gpt2 BPE, char-level, or auto: gpt2 when its vocab files are found, "
                        "else char (default auto)")
    p.add_argument("--vocab-dir", help="folder with GPT-2's encoder.json and vocab.bpe (also "
                                       "read from $CGAD_VOCAB_DIR or tiktoken's cache)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of the text for validation (default 0.1)")
    p.add_argument("--shard-size", type=int, default=100_000_000,
                   help="tokens per training shard (default 100M)")
    return p


def next_command(out_dir):
    """The command that trains on the shards, as typed from the current folder."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt2.py")
    rel = os.path.relpath(script)
    return (f"python {shlex.quote(script if rel.startswith('..') else rel)} "
            f"--data {shlex.quote(out_dir)}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1, got {args.shard_size}")
    name = os.path.splitext(os.path.basename(args.input))[0]
    out_dir = args.out_dir or os.path.join("data", name)
    text = read_text(args.input)
    tokenizer = explain_missing_vocab(lambda: get_tokenizer(
        args.tokenizer, args.vocab_dir, text=text, log=lambda line: print(line, flush=True)))
    try:
        train, val = write_text_shards(text, tokenizer, out_dir, name, args.val_fraction,
                                       args.shard_size)
    except OSError as e:
        raise WriteError(e.errno, e.strerror, e.filename or out_dir) from None
    write_json(os.path.join(out_dir, "tokenizer.json"), tokenizer_record(tokenizer))
    print(f"{args.input}: {len(text):,} characters, tokenizer {tokenizer.name} "
          f"(vocab {tokenizer.vocab_size})")
    for path in train + val:
        n = (os.path.getsize(path) - 1024) // 2
        print(f"wrote {path} ({n:,} tokens)")
    print(f"train with: {next_command(out_dir)}")
    return 0


if __name__ == "__main__":
    run_main(main)
