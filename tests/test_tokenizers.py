"""Tokenizers: char round trips and files, GPT-2 BPE built offline from the shared vocab files,
end-of-text handling, the auto fallback, and text -> shards."""
import os
import shutil

import numpy as np
import pytest

from cgad.data import read_shard, write_text_shards
from cgad.tokenizers import (CharTokenizer, GPT2Tokenizer, get_tokenizer, load_gpt2,
                             load_tokenizer_file)
from conftest import shared_data

SHARED = shared_data()
VOCAB = os.path.join(SHARED, "gpt2")
needs_vocab = pytest.mark.skipif(not os.path.isfile(os.path.join(VOCAB, "vocab.bpe")),
                                 reason="shared GPT-2 vocab files absent")


def test_char_round_trip_and_file(tmp_path):
    tok = CharTokenizer.from_text("hello world\n")
    assert tok.chars == sorted(set("hello world\n"))
    assert tok.vocab_size == 9
    ids = tok.encode("world hello")
    assert ids == [tok.chars.index(c) for c in "world hello"]
    assert tok.decode(ids) == "world hello"
    path = tmp_path / "tok.json"
    tok.save(path)
    again = load_tokenizer_file(path)
    assert isinstance(again, CharTokenizer) and again.chars == tok.chars
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("z")


def test_char_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        CharTokenizer.load(bad)
    with pytest.raises(FileNotFoundError):
        CharTokenizer.load(tmp_path / "none.json")


@needs_vocab
def test_gpt2_offline_matches_reference_ids(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    tok = load_gpt2(VOCAB)
    assert isinstance(tok, GPT2Tokenizer) and tok.vocab_size == 50257
    assert tok.encode("Hello world") == [15496, 995]  # ids from the shared data README
    text = open(os.path.join(SHARED, "tinyshakespeare", "input.txt")).read()
    assert tok.encoding.encode_ordinary(text[:200])[:10] == \
        [5962, 22307, 25, 198, 8421, 356, 5120, 597, 2252, 11]
    assert tok.decode(tok.encode("Hello world")) == "Hello world"


@needs_vocab
def test_gpt2_found_through_env_var(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setenv("CGAD_VOCAB_DIR", VOCAB)
    assert get_tokenizer("auto").name == "gpt2"


@needs_vocab
def test_gpt2_found_in_tiktoken_cache(tmp_path, monkeypatch):
    # tiktoken caches a download under the sha1 of its address (shared data README)
    for name, sha in (("vocab.bpe", "6d1cbeee0f20b3d9449abfede4726ed8212e3aee"),
                      ("encoder.json", "6c7ea1a7e38e3a7f062df639a5b80947f075ffe6")):
        shutil.copy(os.path.join(VOCAB, name), tmp_path / sha)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("CGAD_VOCAB_DIR", raising=False)
    tok = get_tokenizer("auto")
    assert tok.name == "gpt2" and tok.encode("Hello world") == [15496, 995]


@needs_vocab
def test_end_of_text_separates_documents(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    tok = load_gpt2(VOCAB)
    assert tok.encode("a<|endoftext|>b") == [64, 50256, 65]
    ids = tok.encode_documents("one story.<|endoftext|>\nAnother one.<|endoftext|>\n")
    assert ids[0] == 50256 and ids.count(50256) == 2
    second = ids.index(50256, 1)
    assert tok.decode(ids[1:second]) == "one story."
    assert tok.decode(ids[second + 1:]) == "\nAnother one."


@needs_vocab
def test_tinystories_sample_token_count(monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    tok = load_gpt2(VOCAB)
    text = open(os.path.join(SHARED, "tinystories", "tinystories_sample.txt")).read()
    assert len(tok.encode(text)) == 923  # the count the shared README gives
    ids = tok.encode_documents(text)
    assert ids.count(50256) == 5


def test_auto_falls_back_to_char_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty cache
    monkeypatch.delenv("CGAD_VOCAB_DIR", raising=False)
    monkeypatch.setattr("tiktoken.get_encoding", _offline)
    said = []
    tok = get_tokenizer("auto", text="abc", log=said.append)
    assert tok.name == "char" and tok.vocab_size == 3
    assert "falling back to char" in said[0]
    with pytest.raises(RuntimeError, match="not found"):
        get_tokenizer("gpt2")
    with pytest.raises(FileNotFoundError):
        load_gpt2(str(tmp_path))
    with pytest.raises(ValueError, match="unknown tokenizer"):
        get_tokenizer("bpe", text="abc")


def _offline(name):
    raise ConnectionError("offline")


def test_text_to_char_shards(tmp_path):
    text = "abcdefghij" * 10
    tok = CharTokenizer.from_text(text)
    train, val = write_text_shards(text, tok, tmp_path, "t")
    assert [os.path.basename(p) for p in train] == ["t_train_000000.bin"]
    np.testing.assert_array_equal(read_shard(train[0]), tok.encode(text[:90]))
    np.testing.assert_array_equal(read_shard(val[0]), tok.encode(text[90:]))
    assert load_tokenizer_file(tmp_path / "tokenizer.json").chars == tok.chars


@needs_vocab
def test_text_to_gpt2_shards_match_reference_count(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    tok = load_gpt2(VOCAB)
    text = open(os.path.join(SHARED, "tinyshakespeare", "input.txt")).read()
    train, val = write_text_shards(text, tok, tmp_path, "shakespeare", shard_size=200_000)
    n_train = sum(len(read_shard(p)) for p in train)
    n_val = sum(len(read_shard(p)) for p in val)
    # README: 301,966 train and 36,059 val tokens; each split starts with one end-of-text token
    assert (n_train, n_val) == (301_966 + 1, 36_059 + 1)
    assert len(train) == 2 and read_shard(train[0])[0] == 50256
    assert list(read_shard(train[0])[1:4]) == [5962, 22307, 25]
