"""What the command-line tests share: running train/*.py as a user does (a child process that
imports the same cgad as the tests), the step-line format, a small text and run settings."""
import json
import os
import re
import subprocess
import sys

import cgad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# children import the same cgad as this process (installed, or an in-tree build)
CGAD_PATH = os.path.dirname(os.path.dirname(os.path.abspath(cgad.__file__)))
STEP_RE = re.compile(r"^step +(\d+) \| loss: (\d+\.\d{6}) \| lr \d\.\d{4}e[-+]\d\d \| "
                     r"norm: \d+\.\d{4} \| dt: \d+\.\d{2}ms \| tok/sec: \d+\.\d{2}$")
VAL_RE = re.compile(r"^validation loss: \d+\.\d{4}$")
SMALL = ["-B", "4", "-T", "32", "--val-steps", "2", "--max-new-tokens", "20"]
# Runs a train/ script with every fsync of a checkpoint write slowed down, so that writing takes
# most of a run's time and signals or kills at random moments land inside writes.
SLOW_WRITES = """
import os, runpy, sys, time
from cgad import checkpoint
fsync = checkpoint._fsync_path
def slow_fsync(*args, **kwargs):
    time.sleep(0.02)
    fsync(*args, **kwargs)
checkpoint._fsync_path = slow_fsync
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def script(name):
    return os.path.join(ROOT, "train", name)


def env(**extra):
    """The children's environment: this cgad, no vocabulary folder from the caller's shell."""
    e = dict(os.environ, PYTHONPATH=CGAD_PATH, **extra)
    e.pop("CGAD_VOCAB_DIR", None)
    return e


def offline_env(tmp_path):
    """env() where GPT-2's vocabulary can be found nowhere: an empty tiktoken cache, and no
    download even when online."""
    return env(TIKTOKEN_CACHE_DIR=str(tmp_path / "empty-cache"), HTTPS_PROXY="http://127.0.0.1:9",
               https_proxy="http://127.0.0.1:9")


def run(name, *args, cwd=None, check=True, environ=None):
    proc = subprocess.run([sys.executable, script(name), *args], capture_output=True, text=True,
                          env=environ or env(), cwd=cwd, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def popen(name, *args, slow_writes=False, **kw):
    """A train/ script started in the background, its stdout a text pipe."""
    cmd = [sys.executable, "-c", SLOW_WRITES, script(name), *args] if slow_writes else \
        [sys.executable, script(name), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env(), **kw)


def assert_user_error(proc, starts):
    """Exit status 1 and exactly one stderr line, `error: ...` starting with `starts`."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: " + starts), proc.stderr


def steps(text):
    """step -> the log line without its timing fields."""
    return {int(m.group(1)): x.split(" | dt:")[0]
            for x in text.splitlines() if (m := STEP_RE.match(x))}


def records(out):
    """metrics.jsonl without its timings: every step's loss, lr and norm, every val loss."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(x).items() if k not in ("dt_ms", "tok_per_sec")}
                for x in f]


def snapshot(folder):
    """{relative path: bytes} of every file under folder, to show that nothing changed."""
    found = {}
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found
