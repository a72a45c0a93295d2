"""What train/gpt2.py, train/sample.py and train/prepare_data.py share: a user's mistake is one
`error: ...` line and exit status 1, never a traceback; devices are checked through cgad itself;
a GPT-2 tokenizer is recorded with the folder its vocabulary came from, so that later commands
need no --vocab-dir; SIGINT and SIGTERM are turned into an orderly stop.
"""
import argparse
import math
import os
import signal
import sys

import cgad
from cgad.tokenizers import VOCAB_ENV, tokenizer_from_spec

VOCAB_FILES = ("encoder.json", "vocab.bpe")


class UsageError(Exception):
    """A mistake in how a command was called: printed as `error: <message>`."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived while nothing needed finishing."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with usage errors as one `error:` line (exit 1) instead of usage + exit 2."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def check_range(rules):
    """Raise UsageError naming the flag for the first value outside its range. rules: (flag,
    value, minimum, what the value means at the minimum or None) tuples; None values pass."""
    for flag, value, minimum, meaning in rules:
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number, got {value}")
        if value is not None and value < minimum:
            note = f" ({minimum}: {meaning})" if meaning else ""
            raise UsageError(f"{flag} must be at least {minimum}{note}, got {value}")


def resolve_device(name):
    """`auto` is cuda when cgad has a GPU, else cpu (never the test device); any other name is
    checked by making a tensor on it, so cgad decides what it knows."""
    if name == "auto":
        return "cuda" if cgad.cuda.is_available() else "cpu"
    try:
        cgad.zeros(1, device=name)
    except (ValueError, RuntimeError) as e:
        raise UsageError(f"--device {name}: {e}") from None
    return name


def tokenizer_record(tokenizer):
    """tokenizer.spec(), plus for GPT-2 BPE the absolute folder holding encoder.json and
    vocab.bpe when it was loaded from one, so that a later load finds them by itself."""
    spec = dict(tokenizer.spec())
    folder = getattr(tokenizer, "vocab_dir", None)
    if spec["type"] == "gpt2" and folder and _holds_vocab(folder):
        spec["vocab_dir"] = os.path.abspath(folder)
    return spec


def _holds_vocab(folder):
    return all(os.path.isfile(os.path.join(folder, n)) for n in VOCAB_FILES)


def tokenizer_from_record(spec, vocab_dir=None):
    """Rebuild a tokenizer_record(): an explicit vocab_dir first, then the recorded folder when
    it still holds the files, then the usual lookup ($CGAD_VOCAB_DIR, tiktoken's cache)."""
    recorded = spec.get("vocab_dir")
    folder = vocab_dir or (recorded if recorded and _holds_vocab(recorded) else None)
    return explain_missing_vocab(lambda: tokenizer_from_spec(spec, folder))


def explain_missing_vocab(load):
    """Call load(); a GPT-2 vocabulary that cannot be found becomes a UsageError saying what is
    missing and how to give it."""
    try:
        return load()
    except RuntimeError as e:  # load_gpt2: nothing local, and tiktoken could not download
        why = str(e).rsplit("could not download it: ", 1)[-1].split(":")[0]  # the error type
        raise UsageError(f"GPT-2 BPE needs its vocabulary files {' and '.join(VOCAB_FILES)}: "
                         f"not found in --vocab-dir, ${VOCAB_ENV} or tiktoken's cache, and "
                         f"downloading them failed ({why}); give their folder with --vocab-dir "
                         f"DIR or ${VOCAB_ENV}=DIR") from None


def error_line(e):
    """The one-line message for an exception that is a user's problem to fix."""
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.filename}: {e.strerror}"
    if isinstance(e, MemoryError):
        return f"out of memory ({e}); try a smaller -B, -T or --model"
    return str(e)


def run_main(main, argv=None, user_errors=()):
    """Run main(argv) and exit with its status. UsageError, a missing or damaged file
    (FileNotFoundError, ValueError), an OSError and MemoryError, and user_errors, print one
    `error:` line and exit 1; Interrupted and KeyboardInterrupt exit 128 + the signal number."""
    try:
        status = main(argv)
    except (UsageError, OSError, ValueError, MemoryError, *user_errors) as e:
        print(f"error: {error_line(e)}", file=sys.stderr, flush=True)
        status = 1
    except Interrupted as e:
        print(f"interrupted ({e})", file=sys.stderr, flush=True)
        status = 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr, flush=True)
        status = 128 + signal.SIGINT
    sys.exit(status)


class StopSignals:
    """SIGINT and SIGTERM handlers. Outside defer() a signal raises Interrupted at once (nothing
    is under way that must finish); inside it the first signal calls on_signal() (the trainer's
    request_stop) and every signal is only recorded, so that a save in progress completes."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._on_signal = None
        self._previous = {}

    def __enter__(self):
        for s in self.SIGNALS:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False

    def defer(self, on_signal):
        """From now on a signal asks on_signal() to stop instead of raising; one recorded
        while deferring to an earlier callback is passed on right away."""
        self._on_signal = on_signal
        if self.signum is not None:
            on_signal()

    def raise_now(self):
        """Back to raising Interrupted, at once for a signal that came while deferred (the work
        that had to finish is done)."""
        self._on_signal = None
        if self.signum is not None:
            raise Interrupted(self.signum)

    def _handle(self, signum, frame):
        first = self.signum is None
        if first:
            self.signum = signum
        if self._on_signal is None:
            raise Interrupted(signum)
        if first:
            self._on_signal()
