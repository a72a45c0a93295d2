"""Streamed samples (cgad.sampling): the incremental decoder against whole-text decoding, for
GPT-2's BPE (whose tokens can split a UTF-8 character) and char-level ids; stream_samples'
output, written token by token, against the texts and against model.generate; the summary
line."""
import os
import random
import re

import pytest

import cgad
from cgad.models.gpt import GPT, GPTConfig
from cgad.sampling import TextStream, rate_line, sample_text, stream_samples
from cgad.tokenizers import CharTokenizer, load_gpt2
from conftest import shared_data

VOCAB = shared_data("gpt2")
needs_vocab = pytest.mark.skipif(not os.path.isfile(os.path.join(VOCAB, "vocab.bpe")),
                                 reason="shared GPT-2 vocab files absent")
RATE_RE = re.compile(r"^sampled (\d+) x (\d+) tokens = (\d+) in (\d+\.\d\d) s: (\d+\.\d) tok/s$")
# accents, CJK, an emoji and a combining mark: characters of 2, 3 and 4 UTF-8 bytes
TEXT = "Café naïve — 東京の空 🙂👍🏽 e\u0301 done.\n"


@pytest.fixture(scope="module")
def gpt2():
    return load_gpt2(VOCAB)


def streamed(tokenizer, ids, chunks=1):
    """The pieces a TextStream returns for ids pushed `chunks` at a time, then finish()."""
    stream = TextStream(tokenizer)
    pieces = [stream.push(ids[i:i + chunks]) for i in range(0, len(ids), chunks)]
    return pieces + [stream.finish()]


def splits_a_character(tokenizer, t):
    try:
        tokenizer.encoding.decode_single_token_bytes(t).decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


@needs_vocab
def test_bpe_stream_writes_whole_characters_only(gpt2):
    ids = gpt2.encode(TEXT)
    # the case this is about: tokens that hold part of a character
    assert sum(splits_a_character(gpt2, t) for t in ids) >= 3
    pieces = streamed(gpt2, ids)
    assert "".join(pieces) == TEXT == gpt2.decode(ids)
    assert not any("\ufffd" in p for p in pieces)  # no half character was written
    assert "" in pieces  # some token completed no character
    text = ""
    for p in pieces:  # every prefix of the stream is a prefix of the text
        text += p
        assert TEXT.startswith(text)


@needs_vocab
@pytest.mark.parametrize("seed", range(20))
def test_bpe_stream_equals_decode_on_random_ids(gpt2, seed):
    rng = random.Random(seed)
    byte_level = [t for t in range(50257) if splits_a_character(gpt2, t)]
    partial = [t for t in gpt2.encode(TEXT) if splits_a_character(gpt2, t)]
    # whole words, lone bytes (most are invalid UTF-8 on their own), split characters, eot
    pools = [range(50257), byte_level, partial, [gpt2.eot_token]]
    ids = [rng.choice(rng.choice(pools)) for _ in range(rng.randrange(0, 60))]
    for chunks in (1, 3):
        assert "".join(streamed(gpt2, ids, chunks)) == gpt2.decode(ids)


@needs_vocab
def test_bpe_stream_ends_an_unfinished_character_as_decode_does(gpt2):
    ids = gpt2.encode("x🙂")
    cut = ids[:-1]  # the emoji's last byte(s) never come
    assert "".join(streamed(gpt2, cut)) == gpt2.decode(cut)
    assert gpt2.decode(cut).endswith("\ufffd")


def test_char_stream_is_one_character_per_id():
    tok = CharTokenizer.from_text("ab\néx")
    ids = [random.Random(0).randrange(tok.vocab_size) for _ in range(50)]
    pieces = streamed(tok, ids)
    assert all(len(p) == 1 for p in pieces[:-1]) and pieces[-1] == ""
    assert "".join(pieces) == tok.decode(ids)


def test_rate_line_format():
    line = rate_line(3, 200, 4.0)
    assert line == "sampled 3 x 200 tokens = 600 in 4.00 s: 150.0 tok/s"
    assert RATE_RE.match(line)


def tiny_model(vocab_size, seed=0):
    cgad.manual_seed(seed)
    model = GPT(GPTConfig(block_size=16, vocab_size=vocab_size, n_layer=1, n_head=2, n_embd=16))
    model.eval()
    return model


def expected_texts(model, tokenizer, start, skip, n, new, seed, **kw):
    cgad.manual_seed(seed)
    out = model.generate(cgad.tensor([start] * n, dtype=cgad.int64), new, **kw).tolist()
    return [tokenizer.decode(row[skip:]) for row in out]


@pytest.mark.parametrize("prompt", [None, "ab"])
@pytest.mark.parametrize("n", [1, 3])
def test_stream_samples_writes_each_token_as_it_comes(prompt, n):
    tok = CharTokenizer.from_text("abcdefgh \n")
    model = tiny_model(tok.vocab_size)
    writes = []
    new = 25  # past block_size: the crop happens mid-stream
    cgad.manual_seed(5)
    texts, summary = stream_samples(model, tok, writes.append, prompt, n, new, top_k=5,
                                    heading="== {i} ==")
    start = tok.encode(prompt) if prompt else tok.encode("\n")
    assert texts == expected_texts(model, tok, start, 0 if prompt else 1, n, new, 5, top_k=5)
    assert all(len(t) == len(prompt or "") + new for t in texts)
    # sample 0 token by token: the heading (and prompt), one write per token, the final newline
    assert writes[0] == "== 0 ==\n" + (prompt or "")
    assert writes[1:new + 1] == list(texts[0][len(prompt or ""):])
    assert writes[new + 1] == "\n"
    assert writes[new + 2:] == [f"== {i} ==\n{texts[i]}\n" for i in range(1, n)]
    assert "".join(writes) == "".join(f"== {i} ==\n{t}\n" for i, t in enumerate(texts))
    m = RATE_RE.match(summary)
    assert m and (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (n, new, n * new)
    cgad.manual_seed(5)
    assert sample_text(model, tok, prompt, n, new, top_k=5) == texts  # the same, unwritten


@needs_vocab
def test_stream_samples_with_gpt2_bpe(gpt2):
    model = tiny_model(gpt2.vocab_size)
    writes = []
    cgad.manual_seed(2)
    texts, _ = stream_samples(model, gpt2, writes.append, None, 2, 12, top_k=None)
    assert "".join(writes) == "".join(f"--- sample {i}:\n{t}\n" for i, t in enumerate(texts))
    eot = [gpt2.eot_token]
    assert texts == expected_texts(model, gpt2, eot, 1, 2, 12, 2, top_k=None)


def test_stream_samples_with_no_new_tokens():
    tok = CharTokenizer.from_text("ab\n")
    writes = []
    texts, summary = stream_samples(tiny_model(tok.vocab_size), tok, writes.append, "ab", 2, 0)
    assert texts == ["ab", "ab"] and "".join(writes) == "--- sample 0:\nab\n--- sample 1:\nab\n"
    assert summary.startswith("sampled 2 x 0 tokens = 0 in ")
