"""The run folder's rules, for train/gpt2.py: one trainer at a time (an flock on `.lock` holding
its pid), what a folder holds (so that nothing is replaced without --overwrite), removing a run,
and its config.json. docs/run-folder.md describes them for users.
"""
import fcntl
import json
import os
import re
import shutil
import tempfile
import time

from cgad import checkpoint

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
DATA_DIR = "data"  # text given with --data is tokenized into here
# what a run writes into its folder; --overwrite removes exactly these (and data/'s shards)
RUN_FILES = (checkpoint.LATEST_FILE, checkpoint.LATEST_FILE + ".tmp", METRICS_FILE,
             METRICS_FILE + ".tmp", CONFIG_FILE, CONFIG_FILE + ".tmp", "loss.png")
_RUN_ENTRY = re.compile(r"^(ckpt-\d+|\.tmp-.*)$")


NO_CHECKPOINT = "a run with no checkpoint yet (nothing to resume)"


class RunInUse(Exception):
    """Another live trainer holds the folder's lock."""

    def __init__(self, out, pid):
        self.out, self.pid = out, pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"{out} is in use by {who}")


class RunLock:
    """An exclusive flock on <out>/.lock, taken without waiting; the file holds the owner's pid
    while it runs and is emptied on release. The kernel drops an flock when its process dies,
    so a pid found in a lock nobody holds is a run that was killed: taken over with a notice."""

    def __init__(self, out):
        self.out = out
        self.path = os.path.join(out, LOCK_FILE)
        self.created_folder = False
        self.fd = None

    def acquire(self, log):
        """Take the lock or raise RunInUse; creating <out> when needed (OSError naming it when
        that, or the lock file, cannot be written)."""
        if not os.path.isdir(self.out):
            try:
                os.makedirs(self.out)
            except OSError as e:
                raise checkpoint.WriteError(e.errno, e.strerror, self.out) from None
            self.created_folder = True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise checkpoint.WriteError(e.errno, e.strerror, self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd, wait=1.0)  # the holder writes its pid right after locking
            os.close(fd)
            raise RunInUse(self.out, pid) from None
        self.fd = fd
        stale = _read_pid(fd)
        if stale and stale != os.getpid():
            log(f"notice: {self.path} was left by pid {stale}, which no longer runs there "
                f"(killed?); taking it over")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self, remove_folder=False):
        """Empty the lock file and drop the lock; with remove_folder, also remove <out> again
        when acquire() created it and nothing else was written there since."""
        if self.fd is None:
            return
        if remove_folder and self.created_folder and os.listdir(self.out) == [LOCK_FILE]:
            os.remove(self.path)
            os.rmdir(self.out)
        else:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass  # a folder gone read-only: the next run's notice says the pid was left
        os.close(self.fd)
        self.fd = None


def _read_pid(fd, wait=0.0):
    deadline = time.monotonic() + wait
    while True:
        raw = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        if raw.isdigit() or time.monotonic() >= deadline:
            return int(raw) if raw.isdigit() else None
        time.sleep(0.02)


def describe_run(out):
    """A phrase saying what run `out` holds ("a run at step 40 of 2500 (ckpt-40)"), or None when
    it holds none. Damaged files still count as a run: they are described, never read into."""
    if not os.path.isdir(out):
        return None
    names = os.listdir(out)
    if not any(n in RUN_FILES or _RUN_ENTRY.match(n) for n in names):
        return None
    total = None
    try:
        total = read_run_config(out)["args"].get("max_steps")
    except (OSError, ValueError):
        pass
    of = f" of {total}" if isinstance(total, int) else ""
    try:
        latest = checkpoint.latest_checkpoint(out)
    except (OSError, ValueError):
        return f"a run whose {checkpoint.LATEST_FILE} file is damaged"
    if latest is None:
        return NO_CHECKPOINT
    try:
        step = checkpoint.read_state(latest)["step"]
    except (OSError, ValueError):
        return f"a run whose latest checkpoint {os.path.basename(latest)} is damaged"
    return f"a run at step {step}{of} ({os.path.basename(latest)})"


def clear_run(out):
    """Remove the run in `out`: its checkpoints, metrics, config, plot and tokenized text; any
    other file there is left alone."""
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if name in RUN_FILES or _RUN_ENTRY.match(name):
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    data = os.path.join(out, DATA_DIR)
    if os.path.isdir(data):
        for name in os.listdir(data):
            if name.endswith(".bin") or name == "tokenizer.json":
                os.remove(os.path.join(data, name))
        if not os.listdir(data):
            os.rmdir(data)


def check_writable(folder):
    """Raise WriteError naming `folder` unless a file can be created in it (it exists)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise checkpoint.WriteError(e.errno, e.strerror, folder) from None


def read_run_config(out):
    """The run folder's config.json; ValueError naming it when it is damaged."""
    path = os.path.join(out, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        if not isinstance(config.get("args"), dict):
            raise ValueError("no 'args' entry")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: {out} holds no run to resume") from None
    except (ValueError, AttributeError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise ValueError(f"{path}: corrupt run config: {e}") from None
    return config


def write_run_config(out, config):
    """Replace config.json whole (a kill mid-write must not leave --resume a broken file)."""
    checkpoint.write_json(os.path.join(out, CONFIG_FILE), config)
