"""Tokenizers: character-level, and GPT-2 BPE through tiktoken built offline from vocab files.

GPT-2's BPE needs OpenAI's `encoder.json` and `vocab.bpe`. They are looked up in an explicit
folder, then $CGAD_VOCAB_DIR, then tiktoken's cache (where tiktoken stores its own downloads);
failing those, tiktoken itself is asked, which downloads them when online.
"""
import hashlib
import json
import os
import tempfile

EOT_TEXT = "<|endoftext|>"
GPT2_EOT = 50256
VOCAB_ENV = "CGAD_VOCAB_DIR"
# tiktoken's GPT-2 split pattern (r50k_pat_str in tiktoken_ext.openai_public)
GPT2_PATTERN = (r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$"""
                r"""|\s+(?!\S)|\s""")
# tiktoken caches a download under the sha1 of its address
_TIKTOKEN_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}


class CharTokenizer:
    """One token per character of a fixed vocabulary (the sorted characters of a text)."""

    name = "char"
    eot_token = None

    def __init__(self, chars):
        self.chars = list(chars)
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("CharTokenizer: the vocabulary has repeated characters")
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text):
        """Vocabulary of every distinct character in `text`, sorted as nanoGPT does."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        """Text to a list of ids; a character outside the vocabulary raises ValueError."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"CharTokenizer: character {e.args[0]!r} is not in the "
                             f"{self.vocab_size}-character vocabulary") from None

    def encode_documents(self, text):
        """Ids for a whole corpus; characters carry no document separator."""
        return self.encode(text)

    def decode(self, ids):
        """Ids back to text."""
        return "".join(self.chars[int(i)] for i in ids)

    def spec(self):
        """A JSON-serializable description that tokenizer_from_spec() rebuilds."""
        return {"type": "char", "chars": "".join(self.chars)}

    def save(self, path):
        """Write the vocabulary to a JSON file."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.spec(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path):
        """Read a vocabulary written by save()."""
        spec = _read_json(path)
        if not isinstance(spec, dict) or spec.get("type") != "char" or not isinstance(spec.get("chars"), str):
            raise ValueError(f"{path}: not a char tokenizer file")
        return cls(spec["chars"])


class GPT2Tokenizer:
    """GPT-2's BPE (50257 ids, end-of-text 50256) via a tiktoken Encoding."""

    name = "gpt2"
    eot_token = GPT2_EOT

    def __init__(self, encoding, vocab_dir=None):
        self.encoding = encoding
        self.vocab_dir = vocab_dir

    @property
    def vocab_size(self):
        return self.encoding.n_vocab

    def encode(self, text):
        """Text to ids; a literal `<|endoftext|>` becomes the end-of-text id."""
        return self.encoding.encode(text, allowed_special={EOT_TEXT})

    def encode_documents(self, text):
        """Ids for a corpus whose documents are separated by `<|endoftext|>`: each document is
        preceded by the end-of-text id, as llm.c's data scripts do."""
        tokens = []
        for doc in text.split(EOT_TEXT):
            if doc.strip():
                tokens.append(GPT2_EOT)
                tokens.extend(self.encoding.encode_ordinary(doc))
        return tokens

    def decode(self, ids):
        """Ids back to text."""
        return self.encoding.decode([int(i) for i in ids])

    def spec(self):
        """A JSON-serializable description that tokenizer_from_spec() rebuilds."""
        return {"type": "gpt2"}

    def save(self, path):
        """Write the description (the vocabulary itself is GPT-2's, found at load time)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.spec(), f)


def _read_json(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"tokenizer file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None


def _tiktoken_cache_dir():
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    if env is not None:
        return env or None  # "" disables tiktoken's cache
    env = os.environ.get("DATA_GYM_CACHE_DIR")
    return env or os.path.join(tempfile.gettempdir(), "data-gym-cache")


def find_gpt2_vocab(vocab_dir=None):
    """Return (vocab.bpe path, encoder.json path) from the first place holding both, or None."""
    candidates = []
    for folder in (vocab_dir, os.environ.get(VOCAB_ENV)):
        if folder:
            candidates.append((os.path.join(folder, "vocab.bpe"),
                               os.path.join(folder, "encoder.json")))
    cache = _tiktoken_cache_dir()
    if cache:
        candidates.append(tuple(os.path.join(cache, hashlib.sha1(url.encode()).hexdigest())
                                for url in _TIKTOKEN_URLS.values()))
    for bpe, enc in candidates:
        if os.path.isfile(bpe) and os.path.isfile(enc):
            return bpe, enc
    return None


def load_gpt2(vocab_dir=None):
    """GPT-2 BPE from local vocab files, else from tiktoken (which downloads when online).

    Raises FileNotFoundError when an explicit vocab_dir lacks the files, and RuntimeError when
    nothing local exists and tiktoken cannot fetch them.
    """
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    if vocab_dir and not all(os.path.isfile(os.path.join(vocab_dir, n)) for n in _TIKTOKEN_URLS):
        raise FileNotFoundError(f"vocab dir {vocab_dir} must hold encoder.json and vocab.bpe")
    found = find_gpt2_vocab(vocab_dir)
    if found:
        bpe, enc = found
        ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=bpe, encoder_json_file=enc)
        encoding = tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                     special_tokens={EOT_TEXT: GPT2_EOT})
        return GPT2Tokenizer(encoding, os.path.dirname(bpe))
    try:
        return GPT2Tokenizer(tiktoken.get_encoding("gpt2"))
    except Exception as e:  # tiktoken raises requests/OS errors of many kinds when offline
        raise RuntimeError(f"GPT-2 BPE vocabulary not found (looked in --vocab-dir, "
                           f"${VOCAB_ENV}, tiktoken's cache) and tiktoken could not download "
                           f"it: {type(e).__name__}: {e}") from None


def get_tokenizer(name, vocab_dir=None, text=None, log=print):
    """Build the tokenizer `name` ("auto", "gpt2" or "char").

    "char" needs `text` for its vocabulary. "auto" takes GPT-2 BPE when it can be loaded and
    otherwise falls back to char-level, saying so through `log`.
    """
    if name == "gpt2":
        return load_gpt2(vocab_dir)
    if name == "auto":
        try:
            return load_gpt2(vocab_dir)
        except (RuntimeError, FileNotFoundError) as e:
            log(f"tokenizer auto: {e}; falling back to char-level")
            name = "char"
    if name == "char":
        if text is None:
            raise ValueError("the char tokenizer needs the training text for its vocabulary")
        return CharTokenizer.from_text(text)
    raise ValueError(f"unknown tokenizer {name!r}; expected auto, gpt2 or char")


def tokenizer_from_spec(spec, vocab_dir=None):
    """Rebuild a tokenizer from its spec() (as stored in run folders and shard folders)."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "char" and isinstance(spec.get("chars"), str):
        return CharTokenizer(spec["chars"])
    if kind == "gpt2":
        return load_gpt2(vocab_dir)
    raise ValueError(f"unknown tokenizer spec type {kind!r}")


def load_tokenizer_file(path, vocab_dir=None):
    """Read a tokenizer.json written by a tokenizer's save()."""
    return tokenizer_from_spec(_read_json(path), vocab_dir)
