"""Tokenize a text file into llm.c .bin shards for train/gpt2.py --data: the last 10% of the
characters become the validation shard (as nanoGPT splits), documents separated by
`<|endoftext|>` get GPT-2's end-of-text token 50256 before each one (as llm.c's scripts do), and
the tokenizer is saved beside the shards as tokenizer.json."""
import argparse
import os
import sys

from cgad.data import TINY_SHAKESPEARE, write_text_shards
from cgad.tokenizers import get_tokenizer


def build_parser():
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__)
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    name = os.path.splitext(os.path.basename(args.input))[0]
    out_dir = args.out_dir or os.path.join("data", name)
    with open(args.input, encoding="utf-8") as f:
        text = f.read()
    tokenizer = get_tokenizer(args.tokenizer, args.vocab_dir, text=text,
                              log=lambda line: print(line, flush=True))
    train, val = write_text_shards(text, tokenizer, out_dir, name, args.val_fraction,
                                   args.shard_size)
    print(f"{args.input}: {len(text):,} characters, tokenizer {tokenizer.name} "
          f"(vocab {tokenizer.vocab_size})")
    for path in train + val:
        n = (os.path.getsize(path) - 1024) // 2
        print(f"wrote {path} ({n:,} tokens)")
    print(f"train with: python train/gpt2.py --data {out_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FileNotFoundError as e:  # a wrong path is a user error, not a crash
        sys.exit(f"error: {e}")
