"""The command lines, run as a user runs them: train/gpt2.py (log format, falling loss, run
folder, --check, an exact --resume after a kill and after repeated kill -9 at random moments, a
damaged run folder, --on-nan), train/prepare_data.py and train/sample.py."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cgad
from cgad import checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# children import the same cgad as this process (installed, or an in-tree build)
CGAD_PATH = os.path.dirname(os.path.dirname(os.path.abspath(cgad.__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
STEP_RE = re.compile(r"^step +(\d+) \| loss: (\d+\.\d{6}) \| lr \d\.\d{4}e[-+]\d\d \| "
                     r"norm: \d+\.\d{4} \| dt: \d+\.\d{2}ms \| tok/sec: \d+\.\d{2}$")
VAL_RE = re.compile(r"^validation loss: \d+\.\d{4}$")
SMALL = ["-B", "4", "-T", "32", "--val-steps", "2", "--max-new-tokens", "20"]


def env():
    e = dict(os.environ, PYTHONPATH=CGAD_PATH)
    e.pop("CGAD_VOCAB_DIR", None)
    return e


def run(script, *args, cwd=None, check=True):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train", script), *args],
                          capture_output=True, text=True, env=env(), cwd=cwd, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    with open(os.path.join(ROOT, "python", "cgad", "datasets", "tinyshakespeare.txt")) as f:
        path.write_text(f.read()[:60_000])
    return str(path)


def test_help_lists_every_flag():
    out = run("gpt2.py", "--help").stdout
    for flag in ("--data", "--tokenizer", "--vocab-dir", "--model", "-B", "-T",
                 "--total-batch-size", "--max-steps", "--lr", "--min-lr", "--warmup-steps",
                 "--weight-decay", "--grad-clip", "--val-every", "--val-steps", "--ckpt-every",
                 "--sample-every", "--prompt", "--num-samples", "--out", "--resume", "--seed",
                 "--device", "--threads", "--check", "--on-nan"):
        assert re.search(rf"(^|\s){re.escape(flag)}[\s,]", out), flag


def test_short_run_logs_learns_and_fills_the_run_folder(tmp_path, text_file):
    out = str(tmp_path / "run")
    proc = run("gpt2.py", "--data", text_file, "--tokenizer", "char", "--max-steps", "40",
               "--val-every", "20", "--out", out, "--prompt", "ROMEO:", *SMALL)
    lines = proc.stdout.splitlines()
    log = [x for x in lines if x.startswith(("step", "validation"))]
    assert VAL_RE.match(log[0]) and log[1].startswith("step     0 |")
    steps = [STEP_RE.match(x) for x in log if x.startswith("step")]
    assert all(steps) and [int(m.group(1)) for m in steps] == list(range(40))
    losses = [float(m.group(2)) for m in steps]
    assert sum(losses[-5:]) / 5 < losses[0] - 0.8  # from ~4.2 (ln of the vocab) down
    assert sum(bool(VAL_RE.match(x)) for x in log) == 3  # steps 0, 20, 40
    assert any(x.startswith("ROMEO:") for x in lines)  # the closing sample
    names = set(os.listdir(out))
    assert {"metrics.jsonl", "config.json", "latest", "ckpt-20", "ckpt-40"} <= names
    assert open(os.path.join(out, "latest")).read().strip() == "ckpt-40"
    records = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["loss"] for r in records if "loss" in r] == pytest.approx(losses, abs=1e-6)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["args"]["warmup_steps"] == 4 and config["args"]["lr"] == 1e-3
    assert config["tokenizer"]["type"] == "char"

    sample = run("sample.py", "--ckpt", out, "--num-samples", "2", "--max-new-tokens", "30",
                 "--prompt", "KING").stdout
    assert sample.count("--- sample") == 2 and sample.count("KING") >= 2


def test_check_kit_passes(tmp_path):
    proc = run("gpt2.py", "--check", "--out", str(tmp_path), *SMALL)
    passes = [x for x in proc.stdout.splitlines() if x.startswith("PASS")]
    assert len(passes) == 5 and "all checks passed" in proc.stdout


def _steps(text):
    """step -> the log line without its timing fields."""
    return {int(m.group(1)): x.split(" | dt:")[0]
            for x in text.splitlines() if (m := STEP_RE.match(x))}


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, text_file):
    args = ["--data", text_file, "--tokenizer", "char", "--max-steps", "24", "--val-every", "8",
            "--threads", "1", *SMALL]
    full = _steps(run("gpt2.py", *args, "--out", str(tmp_path / "a")).stdout)

    out_b = str(tmp_path / "b")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "train", "gpt2.py"), *args,
                             "--out", out_b], stdout=subprocess.PIPE, text=True, env=env())
    for line in proc.stdout:
        if line.startswith("step    13"):  # after ckpt-8, mid-way to ckpt-16
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    proc.stdout.close()
    assert open(os.path.join(out_b, "latest")).read().strip() in ("ckpt-8", "ckpt-16")
    resumed = run("gpt2.py", "--resume", "--out", out_b).stdout  # flags come from the run
    assert "resumed" in resumed
    got = _steps(resumed)
    assert min(got) in (8, 16) and max(got) == 23
    assert all(got[s] == full[s] for s in got)  # losses, lr and norms to the printed digit


# Runs train/gpt2.py with every fsync of a checkpoint write slowed down, so that writing takes
# most of a run's time and kills at random moments land inside writes.
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
KILL_TRIALS = int(os.environ.get("CGAD_TEST_KILL_TRIALS", "8"))  # more for a longer soak


def _records(out):
    """metrics.jsonl without its timings: every step's loss, lr and norm, every val loss."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(x).items() if k not in ("dt_ms", "tok_per_sec")}
                for x in f]


def _writing(out, pid=None):
    """Whether a checkpoint write is under way or was cut short: by process `pid` (its temporary
    checkpoint folder), or by any process (also the `latest.tmp` of its last phase)."""
    if pid is not None:
        return any(n.startswith(".tmp-") and n.endswith(f"-{pid}") for n in os.listdir(out))
    return any(n.startswith(".tmp-") or n == "latest.tmp" for n in os.listdir(out))


def test_kill_9_at_random_moments_then_resume_matches_uninterrupted_run(tmp_path, text_file):
    steps = 6 * KILL_TRIALS  # enough work left for every trial to interrupt
    args = ["--data", text_file, "--tokenizer", "char", "--max-steps", str(steps),
            "--val-every", "6", "--ckpt-every", "2", "--threads", "1", *SMALL]
    out_a, out_b = str(tmp_path / "a"), str(tmp_path / "b")
    run("gpt2.py", *args, "--out", out_a)
    expected = _records(out_a)
    assert [r["step"] for r in expected if "loss" in r] == list(range(steps))

    rng = random.Random(1234)
    kills = in_write = 0
    log_path = str(tmp_path / "log.txt")
    resumes = 0
    for trial in range(KILL_TRIALS):
        resume = os.path.isfile(os.path.join(out_b, "latest"))
        resumes += resume
        cmd = [sys.executable, "-c", SLOW_WRITES, os.path.join(ROOT, "train", "gpt2.py"), *args,
               "--out", out_b, *(["--resume"] if resume else [])]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env())
        deadline = time.time() + 120
        # even trials: a random moment after the first logged step; odd: inside a checkpoint
        # write (seen as its temporary folder), at a random offset into it
        while proc.poll() is None and time.time() < deadline:
            if trial % 2 == 0 and "\nstep " in open(log_path).read():
                time.sleep(rng.uniform(0.0, 0.6))
                break
            if trial % 2 == 1 and os.path.isdir(out_b) and _writing(out_b, proc.pid):
                time.sleep(rng.uniform(0.0, 0.1))
                break
            time.sleep(0.002)
        if proc.poll() is not None:  # finished before the moment came
            assert proc.returncode == 0, open(log_path).read()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        in_write += _writing(out_b, proc.pid)
        if os.path.isfile(os.path.join(out_b, "latest")):  # a complete checkpoint, always
            checkpoint.read_checkpoint(out_b)
    assert kills >= KILL_TRIALS - 2 and in_write >= max(1, KILL_TRIALS // 8), (kills, in_write)
    while True:  # then --resume until done, as a user would
        proc = run("gpt2.py", "--resume", "--out", out_b, check=False)
        resumes += 1
        assert proc.returncode == 0, proc.stdout + proc.stderr
        if "final validation loss" in proc.stdout:
            break
    assert _records(out_b) == expected  # every step's loss, lr, norm and val loss, exactly
    final_a, final_b = checkpoint.read_checkpoint(out_a)[0], checkpoint.read_checkpoint(out_b)[0]
    assert all(np.array_equal(final_a[k], final_b[k]) for k in final_a)
    assert not _writing(out_b)  # killed writers' leftovers were pruned by later checkpoints
    print(f"{kills} kills ({in_write} inside a checkpoint write), {resumes} resumes: "
          f"all {len(expected)} records equal the uninterrupted run's")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, text_file):
    out = str(tmp_path_factory.mktemp("finished") / "run")
    run("gpt2.py", "--data", text_file, "--tokenizer", "char", "--max-steps", "2",
        "--val-every", "2", "--out", out, *SMALL)
    return out


@pytest.mark.parametrize("fname", ["model.safetensors", "optim.safetensors", "state.json",
                                   "latest", "config.json"])
def test_resume_from_a_damaged_run_folder_is_a_clean_error(tmp_path, finished_run, fname):
    out = str(tmp_path / "run")
    shutil.copytree(finished_run, out)
    path = os.path.join(out, fname if fname in ("latest", "config.json") else "ckpt-2/" + fname)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    proc = run("gpt2.py", "--resume", "--out", out, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: {path}: ")


def test_on_nan_stop_and_skip(tmp_path, text_file):
    # lr 1e30: step 0 is finite and makes the weights huge, step 1's loss is NaN
    args = ["--data", text_file, "--tokenizer", "char", "--max-steps", "5", "--val-every", "5",
            "--ckpt-every", "1", "--lr", "1e30", *SMALL]
    out = str(tmp_path / "stop")
    proc = run("gpt2.py", *args, "--out", out, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: step 1: non-finite loss nan")
    assert "ckpt-1" in proc.stderr and open(os.path.join(out, "latest")).read() == "ckpt-1\n"
    assert sorted(n for n in os.listdir(out) if n.startswith("ckpt-")) == ["ckpt-1"]
    model_t = checkpoint.read_checkpoint(out)[0]
    assert all(np.all(np.isfinite(a)) for a in model_t.values())

    out = str(tmp_path / "skip")
    proc = run("gpt2.py", *args, "--on-nan", "skip", "--out", out,
               "--max-new-tokens", "0")  # this model's closing sample could only be NaN
    warnings = [x for x in proc.stdout.splitlines() if x.startswith("warning: step")]
    assert [int(x.split()[2].rstrip(":")) for x in warnings] == [1, 2, 3, 4]
    assert all("skipped this update" in x for x in warnings)
    assert open(os.path.join(out, "latest")).read() == "ckpt-5\n"
    final = checkpoint.read_checkpoint(out)[0]  # the skipped steps left the weights alone
    assert all(np.array_equal(final[k], model_t[k]) for k in final)
    assert json.load(open(os.path.join(out, "config.json")))["args"]["on_nan"] == "skip"


def test_prepare_data_then_train_on_shards(tmp_path):
    sample = os.path.join(SHARED, "tinystories", "tinystories_sample.txt")
    vocab = os.path.join(SHARED, "gpt2")
    if not os.path.isfile(sample) or not os.path.isfile(os.path.join(vocab, "vocab.bpe")):
        pytest.skip("shared data absent")
    shards = str(tmp_path / "shards")
    out = run("prepare_data.py", "--input", sample, "--out-dir", shards, "--tokenizer", "gpt2",
              "--vocab-dir", vocab, "--val-fraction", "0.2").stdout
    assert "tinystories_sample_train_000000.bin" in out
    assert sorted(os.listdir(shards)) == ["tinystories_sample_train_000000.bin",
                                          "tinystories_sample_val_000000.bin", "tokenizer.json"]
    proc = run("gpt2.py", "--data", shards, "--vocab-dir", vocab, "--max-steps", "3",
               "--val-every", "3", "--out", str(tmp_path / "run"), "-B", "2", "-T", "32",
               "--val-steps", "1", "--max-new-tokens", "5", "--lr", "1e-3")
    assert "1 train and 1 val shard(s)" in proc.stdout
    assert "model: tiny (6.85M parameters" in proc.stdout  # 50257 x 128 embedding included
    assert len(_steps(proc.stdout)) == 3


def test_auto_tokenizer_falls_back_to_char_and_says_so(tmp_path, text_file):
    e = env()
    e["TIKTOKEN_CACHE_DIR"] = str(tmp_path / "empty-cache")
    e["HTTPS_PROXY"] = e["https_proxy"] = "http://127.0.0.1:9"  # no download, even online
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "train", "prepare_data.py"),
                           "--input", text_file, "--out-dir", str(tmp_path / "d")],
                          capture_output=True, text=True, env=e, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "falling back to char" in proc.stdout and "tokenizer char" in proc.stdout


def test_bad_flags_fail_cleanly(tmp_path):
    proc = run("gpt2.py", "-T", "4096", "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "block size" in proc.stderr
    proc = run("gpt2.py", "--total-batch-size", "1000", "-B", "4", "-T", "32",
               "--out", str(tmp_path), check=False)
    assert proc.returncode != 0 and "multiple" in proc.stderr
    proc = run("gpt2.py", "--data", str(tmp_path / "nope"), "--out", str(tmp_path), check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: no data at")
    proc = run("gpt2.py", "--resume", "--out", str(tmp_path / "empty"), check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ")
    proc = run("sample.py", "--ckpt", str(tmp_path / "none"), check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr
