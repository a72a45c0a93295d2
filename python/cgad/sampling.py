"""Text in, text out: prompt encoding, generation and decoding for the training job and
train/sample.py, with the one set of sampling defaults both use. Samples are printed as they are
generated (stream_samples): ids are decoded incrementally so that only whole characters are
written."""
import codecs
import sys
import time

import cgad

# train/gpt2.py's closing (and periodic) samples and train/sample.py start from these
DEFAULTS = {"num_samples": 1, "max_new_tokens": 200, "temperature": 1.0, "top_k": 50}


def start_ids(tokenizer, prompt):
    """Token ids to start generating from: the prompt, or without one the end-of-text token
    (GPT-2) or a newline (char-level, the first character when there is no newline)."""
    if prompt:
        return tokenizer.encode(prompt)
    if tokenizer.eot_token is not None:
        return [tokenizer.eot_token]
    return tokenizer.encode("\n") if "\n" in getattr(tokenizer, "stoi", {}) else [0]


def generate_options(temperature, top_k):
    """(temperature, top_k) for GPT.generate from the command lines' meanings: temperature 0 is
    greedy decoding (top-k 1, since generate needs a positive temperature), top_k 0 samples from
    every token. ValueError naming the flag for negative values."""
    if not temperature >= 0:  # NaN too
        raise ValueError(f"--temperature must be >= 0 (0: greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0: every token), got {top_k}")
    if temperature == 0:
        return 1.0, 1
    return temperature, top_k or None


class TextStream:
    """Decodes ids one at a time into text, writing only whole characters.

    GPT-2's BPE tokens are byte strings, and the bytes of one UTF-8 character can be split over
    two or more tokens: the bytes go through an incremental UTF-8 decoder that holds back an
    unfinished character until its last byte arrives. Invalid bytes become U+FFFD, as
    tokenizer.decode writes them, so the concatenation of everything push() and finish() return
    equals tokenizer.decode(all the ids). A char-level token is one whole character already."""

    def __init__(self, tokenizer):
        encoding = getattr(tokenizer, "encoding", None)  # GPT2Tokenizer's tiktoken Encoding
        if encoding is not None:
            self._bytes = encoding.decode_single_token_bytes
            self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        else:
            self._tokenizer = tokenizer
            self._utf8 = None

    def push(self, ids):
        """The text that the ids (an iterable of ints) complete."""
        ids = [int(i) for i in ids]
        if self._utf8 is None:
            return self._tokenizer.decode(ids)
        return self._utf8.decode(b"".join(self._bytes(i) for i in ids))

    def finish(self):
        """The rest: an unfinished character at the end as U+FFFD (as decode does)."""
        return "" if self._utf8 is None else self._utf8.decode(b"", final=True)


def rate_line(n_samples, n_tokens, seconds):
    """The summary after sampling: every new token of every sample counts."""
    total = n_samples * n_tokens
    rate = total / seconds if seconds > 0 else float("inf")
    return (f"sampled {n_samples} x {n_tokens} tokens = {total} in {seconds:.2f} s: "
            f"{rate:.1f} tok/s")


def write_now(text):
    """Write text to stdout at once (stdout is block-buffered when it is not a terminal)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def stream_samples(model, tokenizer, write, prompt=None, num_samples=1, max_new_tokens=200,
                   temperature=1.0, top_k=None, device="cpu", heading="--- sample {i}:"):
    """Generate num_samples continuations of `prompt` as one batch and write them with
    write(str): sample 0 as it is generated, token by token (write is called once per token,
    so a write that flushes shows each as it comes), then the others, which are complete when
    sample 0 is. Each sample is `heading` (formatted with i), a newline, its text (the prompt
    included) and a newline. Returns (the texts, rate_line()); the time counts generation and
    writing, from the prompt to the last token."""
    ids = start_ids(tokenizer, prompt)
    skip = 0 if prompt else len(ids)  # the implicit start token is not part of the text
    idx = cgad.tensor([ids] * num_samples, dtype=cgad.int64, device=device)
    rows = [[] for _ in range(num_samples)]
    stream = TextStream(tokenizer)
    t0 = time.perf_counter()
    write(heading.format(i=0) + "\n" + stream.push(ids[skip:]))
    for new in model.generate_tokens(idx, max_new_tokens, temperature=temperature, top_k=top_k):
        for row, (t,) in zip(rows, new.tolist()):
            row.append(t)
        write(stream.push(rows[0][-1:]))
    write(stream.finish() + "\n")
    seconds = time.perf_counter() - t0
    texts = [tokenizer.decode(ids[skip:] + row) for row in rows]
    for i in range(1, num_samples):
        write(f"{heading.format(i=i)}\n{texts[i]}\n")
    return texts, rate_line(num_samples, max_new_tokens, seconds)


def sample_text(model, tokenizer, prompt=None, num_samples=1, max_new_tokens=200,
                temperature=1.0, top_k=None, device="cpu"):
    """Generate num_samples continuations of `prompt`; returns the texts (prompt included), the
    same as stream_samples' for the same seed, with nothing written."""
    texts, _ = stream_samples(model, tokenizer, lambda text: None, prompt, num_samples,
                              max_new_tokens, temperature=temperature, top_k=top_k, device=device)
    return texts
