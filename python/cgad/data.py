"""Token shards in llm.c's .bin format and DataLoaderLite, the batch loader of build-nanogpt.

A shard is a 256 x int32 header (magic 20240520, version 1, token count, then zeros) followed by
the tokens as uint16. A loader reads each batch from the open file (no memory map, which would
end in SIGBUS if the file shrank under it), so gigabytes of tokens cost no RAM; a shard whose size
changes after it was opened is a ValueError naming it. Shards are written to a new file and renamed
into place, so a reader of the old file keeps reading the old, complete tokens.
"""
import glob
import os

import numpy as np

import cgad

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
# shipped inside the package so the default training run needs no download
TINY_SHAKESPEARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "datasets",
                                "tinyshakespeare.txt")


def write_shard(path, tokens):
    """Write `tokens` (ints in [0, 65535]) to `path` as an llm.c .bin shard."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"write_shard: tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() > 65535):
        raise ValueError(f"write_shard: token ids must fit uint16 [0, 65535], got range "
                         f"[{tokens.min()}, {tokens.max()}] for {path}")
    header = np.zeros(HEADER_INTS, dtype=np.int32)
    header[0], header[1], header[2] = MAGIC, VERSION, tokens.size
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(header.tobytes())
            f.write(tokens.astype(np.uint16).tobytes())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_header(path, f=None):
    """Validate a shard's header and size (of the open file f when given); return its token count."""
    path = os.fspath(path)
    if f is None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"token shard not found: {path}")
        with open(path, "rb") as f:
            return _check_header(path, f)
    size = os.fstat(f.fileno()).st_size
    if size < HEADER_BYTES:
        raise ValueError(f"{path}: not a token shard: {size} bytes, shorter than the "
                         f"{HEADER_BYTES}-byte header")
    f.seek(0)
    header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
    if header[0] != MAGIC:
        raise ValueError(f"{path}: bad magic number {header[0]} (expected {MAGIC}); "
                         f"not an llm.c .bin shard")
    if header[1] != VERSION:
        raise ValueError(f"{path}: unsupported shard version {header[1]} (expected {VERSION})")
    count = int(header[2])
    expected = HEADER_BYTES + 2 * count
    if size < expected:
        raise ValueError(f"{path}: truncated: header says {count} tokens ({expected} bytes), "
                         f"file has {size} bytes")
    if size > expected:
        raise ValueError(f"{path}: {size - expected} unexpected trailing bytes after "
                         f"{count} tokens")
    return count


class _Shard:
    """An open shard, sliced like an array of its tokens: each slice is read from the file, after
    checking that the file still has the size it was opened with."""

    def __init__(self, path):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"token shard not found: {path}")
        self.path = path
        self._file = open(path, "rb")
        try:
            self._count = _check_header(path, self._file)
        except BaseException:
            self._file.close()
            raise
        self._size = HEADER_BYTES + 2 * self._count

    def __len__(self):
        return self._count

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError(f"{self.path}: shards are read by slice, got {type(index).__name__}")
        start, stop, step = index.indices(self._count)
        if step != 1:
            raise ValueError(f"{self.path}: shards are read by contiguous slices, got step {step}")
        n = max(stop - start, 0)
        size = os.fstat(self._file.fileno()).st_size
        if size != self._size:
            raise ValueError(f"{self.path}: the shard changed size while open ({self._size} bytes "
                             f"when opened, {size} now); shards must be replaced by renaming a "
                             f"new file into place, not rewritten")
        self._file.seek(HEADER_BYTES + 2 * start)
        data = self._file.read(2 * n)
        if len(data) != 2 * n:
            raise ValueError(f"{self.path}: the shard changed while open (read {len(data)} of "
                             f"{2 * n} bytes)")
        return np.frombuffer(data, dtype="<u2").astype(np.uint16)

    def close(self):
        self._file.close()


def read_shard(path):
    """Read an llm.c .bin shard; returns a uint16 array of its tokens (an in-memory copy)."""
    shard = _Shard(path)
    try:
        return shard[:]
    finally:
        shard.close()


def resolve_files(files):
    """Expand a path, a glob pattern or a list of them into a sorted list of shard paths."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = []
    for entry in files:
        entry = os.fspath(entry)
        if glob.has_magic(entry):
            matches = sorted(glob.glob(entry))
            if not matches:
                raise FileNotFoundError(f"no token shards match {entry}")
            paths.extend(matches)
        else:
            if not os.path.isfile(entry):
                raise FileNotFoundError(f"token shard not found: {entry}")
            paths.append(entry)
    if not paths:
        raise ValueError("DataLoaderLite: no shard files given")
    return paths


def write_text_shards(text, tokenizer, out_dir, name, val_fraction=0.1,
                      shard_size=100_000_000):
    """Tokenize `text` into out_dir/{name}_val_000000.bin and {name}_train_NNNNNN.bin shards
    (the last val_fraction of the characters is validation, as nanoGPT splits), and save the
    tokenizer beside them as tokenizer.json; returns (train_paths, val_paths)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    os.makedirs(out_dir, exist_ok=True)
    n = int(len(text) * (1 - val_fraction))
    splits = {"train": tokenizer.encode_documents(text[:n])}
    if val_fraction > 0:
        splits["val"] = tokenizer.encode_documents(text[n:])
    paths = {"train": [], "val": []}
    for split, tokens in splits.items():
        tokens = np.asarray(tokens, dtype=np.int64)
        for i, start in enumerate(range(0, max(len(tokens), 1), shard_size)):
            path = os.path.join(out_dir, f"{name}_{split}_{i:06d}.bin")
            write_shard(path, tokens[start:start + shard_size])
            paths[split].append(path)
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    return paths["train"], paths["val"]


def split_shard_files(spec):
    """(train, val) shard paths from a folder, a glob pattern or one .bin file; a shard whose
    name contains "val" is validation, every other one training."""
    spec = os.fspath(spec)
    if os.path.isdir(spec):
        files = sorted(glob.glob(os.path.join(spec, "*.bin")))
    elif glob.has_magic(spec):
        files = sorted(glob.glob(spec))
    elif os.path.isfile(spec):
        files = [spec]
    else:
        raise FileNotFoundError(f"no data at {spec}")
    val = [f for f in files if "val" in os.path.basename(f)]
    train = [f for f in files if f not in val]
    if not train:
        raise FileNotFoundError(f"no training shards (*.bin without 'val' in the name) in {spec}")
    return train, val


class DataLoaderLite:
    """Sequential (B, T) batches over token shards, as in build-nanogpt.

    Each process reads its own B*T slice of every num_processes*B*T window, so ranks never
    overlap; at the end of a shard it moves to the next one, and after the last wraps around.
    With vocab_size, a token id outside [0, vocab_size) (a damaged shard, or one made with
    another tokenizer) raises a ValueError naming the shard instead of reaching the model.
    """

    def __init__(self, B, T, files, process_rank=0, num_processes=1, vocab_size=None):
        if B < 1 or T < 1:
            raise ValueError(f"DataLoaderLite: B and T must be positive, got B={B}, T={T}")
        if not 0 <= process_rank < num_processes:
            raise ValueError(f"DataLoaderLite: process_rank {process_rank} out of range for "
                             f"num_processes {num_processes}")
        self.B, self.T, self.vocab_size = B, T, vocab_size
        self.process_rank, self.num_processes = process_rank, num_processes
        self.files = resolve_files(files)
        need = B * T * num_processes + 1
        for path in self.files:
            count = _check_header(path)
            if count < need:
                raise ValueError(f"{path}: too short: {count} tokens, a batch of B={B}, T={T} "
                                 f"over {num_processes} process(es) needs at least {need}")
        self.reset()

    def reset(self):
        """Go back to the start of the first shard."""
        self._load_shard(0)

    def _load_shard(self, index):
        shard = _Shard(self.files[index])
        if getattr(self, "tokens", None) is not None:
            self.tokens.close()
        self.current_shard, self.tokens = index, shard
        self.current_position = self.B * self.T * self.process_rank

    def next_batch(self):
        """Return (x, y): int64 (B, T) tensors, y being x shifted by one token."""
        B, T = self.B, self.T
        buf = np.asarray(self.tokens[self.current_position:self.current_position + B * T + 1],
                         dtype=np.int64)
        if self.vocab_size is not None and buf.max() >= self.vocab_size:
            bad = int(np.argmax(buf >= self.vocab_size))
            raise ValueError(f"{self.files[self.current_shard]}: token {self.current_position + bad}"
                             f" has id {buf[bad]}, "
                             f"out of range for vocab_size {self.vocab_size} (a damaged shard, "
                             f"or one made with another tokenizer)")
        x = cgad.from_numpy(buf[:-1].reshape(B, T))
        y = cgad.from_numpy(buf[1:].reshape(B, T))
        self.current_position += B * T * self.num_processes
        if self.current_position + B * T * self.num_processes + 1 > len(self.tokens):
            self._load_shard((self.current_shard + 1) % len(self.files))
        return x, y

    def state_dict(self):
        """The position to resume from: shard index and token offset (JSON-serializable)."""
        return {"shard": self.current_shard, "position": self.current_position,
                "files": [os.path.basename(p) for p in self.files]}

    def load_state_dict(self, state):
        """Continue from a position saved by state_dict()."""
        try:
            shard, position = int(state["shard"]), int(state["position"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"DataLoaderLite.load_state_dict: expected a state_dict() with 'shard' and "
                             f"'position' ints, got {state!r} ({e})") from None
        names = [os.path.basename(p) for p in self.files]
        if "files" in state and list(state["files"]) != names:
            raise ValueError(f"DataLoaderLite.load_state_dict: saved shards {state['files']} "
                             f"differ from this loader's {names}")
        if not 0 <= shard < len(self.files):
            raise ValueError(f"DataLoaderLite.load_state_dict: shard {shard} out of range "
                             f"for {len(self.files)} file(s)")
        self._load_shard(shard)
        if not 0 <= position <= len(self.tokens) - self.B * self.T - 1:
            raise ValueError(f"DataLoaderLite.load_state_dict: position {position} out of "
                             f"range for {self.files[shard]} ({len(self.tokens)} tokens)")
        self.current_position = position
