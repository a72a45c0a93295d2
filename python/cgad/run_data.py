"""train/gpt2.py's --data: a text file is tokenized into shards in a temporary folder (they move
into the run folder only once every check has passed), a folder, glob or .bin is used as it is;
then every shard is checked to hold at least one batch.
"""
import json
import os
import shutil

from cgad.checkpoint import WriteError, write_json
from cgad.cli import (UsageError, explain_missing_vocab, tokenizer_from_record,
                      tokenizer_record)
from cgad.data import TINY_SHAKESPEARE, read_shard, split_shard_files, write_text_shards
from cgad.tokenizers import get_tokenizer, load_gpt2

TEXT_NAME = "text"  # the shards of a text file are text_train_000000.bin, text_val_000000.bin


def read_text(path):
    """A UTF-8 text file's content; UsageError naming it when it is not text."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); --data takes "
                         f"a UTF-8 text file or .bin token shards") from None


def is_text(data):
    """Whether --data names a text file (None: the embedded Tiny Shakespeare) to tokenize."""
    return data is None or (os.path.isfile(data) and not data.endswith(".bin"))


def tokenize_text(data, tokenizer_name, vocab_dir, folder, log):
    """Tokenize the text file `data` (None: the embedded text) into shards in `folder`; returns
    (train files, val files, tokenizer)."""
    path = data or TINY_SHAKESPEARE
    text = read_text(path)
    tokenizer = explain_missing_vocab(
        lambda: get_tokenizer(tokenizer_name, vocab_dir, text=text, log=log))
    log(f"data: {path} ({len(text):,} characters), tokenizer {tokenizer.name} "
        f"(vocab {tokenizer.vocab_size})")
    train, val = write_text_shards(text, tokenizer, folder, TEXT_NAME)
    write_json(os.path.join(folder, "tokenizer.json"), tokenizer_record(tokenizer))
    return train, val, tokenizer


def shard_files(data, vocab_dir, log):
    """(train files, val files, tokenizer or None) of a shard folder, glob or file: the
    tokenizer is the folder's tokenizer.json (prepare_data.py writes one), else GPT-2 BPE as
    llm.c's shards use; without either, training runs on ids alone."""
    train, val = split_shard_files(data)
    folder = data if os.path.isdir(data) else os.path.dirname(data)
    spec_path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(spec_path):
        try:
            with open(spec_path, encoding="utf-8") as f:
                spec = json.load(f)
        except ValueError as e:
            raise ValueError(f"{spec_path}: not a tokenizer file: {e}") from None
        tokenizer = tokenizer_from_record(spec, vocab_dir)
    else:
        try:
            tokenizer = load_gpt2(vocab_dir)
        except (RuntimeError, FileNotFoundError) as e:
            log(f"no tokenizer for sampling ({e}); training on ids alone")
            tokenizer = None
    log(f"data: {len(train)} train and {len(val)} val shard(s) from {data}")
    return train, val, tokenizer


def check_batch_fits(files, B, T, label):
    """UsageError when a shard holds fewer tokens than one (B, T) batch needs, saying how many
    it has and which -B / -T would fit every shard."""
    counts = {path: len(read_shard(path)) for path in files}
    short = [path for path, n in counts.items() if n < B * T + 1]
    if not short:
        return
    n, fewest = counts[short[0]], min(counts.values())
    if fewest < 2:
        raise UsageError(f"{label(short[0])} has {n} token(s): nothing to train or evaluate on")
    fit = f"-B {(fewest - 1) // T} -T {T}" if fewest - 1 >= T else f"-B 1 -T {fewest - 1}"
    raise UsageError(f"{label(short[0])} has {n:,} tokens, too few for one batch of -B {B} x "
                     f"-T {T} (which needs {B * T + 1:,}); {fit} would fit")


def install_shards(tmp_dir, folder, train, val):
    """Copy the tokenized shards and tokenizer.json from tmp_dir into the run's `folder`;
    returns the (train, val) paths there. WriteError naming the file when the disk is full or
    the folder not writable."""
    os.makedirs(folder, exist_ok=True)
    for name in sorted(os.listdir(tmp_dir)):
        dest = os.path.join(folder, name)
        try:
            shutil.copyfile(os.path.join(tmp_dir, name), dest)
        except OSError as e:
            raise WriteError(e.errno, e.strerror, dest) from None
    return ([os.path.join(folder, os.path.basename(p)) for p in train],
            [os.path.join(folder, os.path.basename(p)) for p in val])
