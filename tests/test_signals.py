"""SIGINT and SIGTERM sent to a real train/gpt2.py: the step in flight finishes, a checkpoint of
the last completed step is written (a second signal during that save waits for it), one line
names it with the resume command, the exit status is 130 / 143, and the resumed run's every
loss equals an uninterrupted run's. During the checks before a run starts, a signal stops it at
once, with nothing in the folder changed."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from cgad import checkpoint
from cli_helpers import SMALL, env, popen, records, run, script, snapshot

STEPS = 24


@pytest.fixture(scope="module")
def args(text_file):
    return ["--data", text_file, "--tokenizer", "char", "--max-steps", str(STEPS),
            "--val-every", "8", "--threads", "1", *SMALL]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, args):
    out = str(tmp_path_factory.mktemp("full") / "run")
    run("gpt2.py", *args, "--out", out)
    return records(out)


def finish(proc):
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def stopped_line(stdout, name, out):
    """The one line a stop prints: (steps done, checkpoint path)."""
    lines = [x for x in stdout.splitlines() if x.startswith("stopped by ")]
    assert len(lines) == 1, stdout
    m = re.match(rf"^stopped by {name} with (\d+) of {STEPS} steps done: checkpoint (\S+); "
                 rf"resume with: python \S*gpt2\.py --resume --out {re.escape(out)}$", lines[0])
    assert m, lines[0]
    return int(m.group(1)), m.group(2)


@pytest.mark.parametrize("sig,name,status", [(signal.SIGINT, "SIGINT", 130),
                                             (signal.SIGTERM, "SIGTERM", 143)])
def test_a_signal_mid_run_checkpoints_the_last_step(tmp_path, args, uninterrupted, sig, name,
                                                    status):
    out = str(tmp_path / "run")
    proc = popen("gpt2.py", *args, "--out", out)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step    13"):  # after ckpt-8, mid-way to ckpt-16
            proc.send_signal(sig)
            break
    code, rest, err = finish(proc)
    assert code == status and "Traceback" not in err, err
    done, path = stopped_line("".join(seen) + rest, name, out)
    assert done in (14, 15)  # the step in flight when the signal came was finished
    assert path == os.path.join(out, f"ckpt-{done}") == checkpoint.latest_checkpoint(out)
    checkpoint.read_checkpoint(out)
    resumed = run("gpt2.py", "--resume", "--out", out).stdout
    assert f"resumed {out} at step {done}" in resumed
    assert records(out) == uninterrupted  # every loss, lr, norm and validation loss


def test_a_second_signal_while_saving_waits_for_the_save(tmp_path, args, uninterrupted):
    out = str(tmp_path / "run")
    proc = popen("gpt2.py", *args, "--out", out, "--ckpt-every", "4", slow_writes=True)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:  # until a checkpoint is being written
        if os.path.isdir(out) and any(n.startswith(".tmp-ckpt-") for n in os.listdir(out)):
            break
        time.sleep(0.002)
    writing = next(n for n in os.listdir(out) if n.startswith(".tmp-ckpt-"))
    step = int(writing.split("-")[2])
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # a second one, while that checkpoint is still written
    code, stdout, err = finish(proc)
    assert code == 143 and "Traceback" not in err, err
    done, path = stopped_line(stdout, "SIGTERM", out)
    assert done == step and path == os.path.join(out, f"ckpt-{step}")
    assert checkpoint.latest_checkpoint(out) == path
    checkpoint.read_checkpoint(out)  # complete: every file's size and hash as recorded
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    run("gpt2.py", "--resume", "--out", out)
    assert records(out) == uninterrupted


# Runs train/gpt2.py with its last check (does every shard hold a batch?) announced and slowed
# down, so that a signal lands while the run is still checking.
SLOW_CHECKS = """
import runpy, sys, time
from cgad import run_data
check = run_data.check_batch_fits
def slow_check(*args, **kwargs):
    print("checking", flush=True)
    time.sleep(30)
    return check(*args, **kwargs)
run_data.check_batch_fits = slow_check
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_signal_during_the_checks_stops_at_once_and_changes_nothing(tmp_path, finished_run,
                                                                      args):
    out = str(tmp_path / "run")
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CHECKS, script("gpt2.py"), *args,
                             "--overwrite", "--out", out], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    for line in proc.stdout:
        if line == "checking\n":
            proc.send_signal(signal.SIGINT)
            break
    started = time.time()
    code, stdout, err = finish(proc)
    assert code == 130 and time.time() - started < 20 and "Traceback" not in err, err
    assert f"interrupted (SIGINT) during the checks; nothing in {out} was changed" in stdout
    assert snapshot(out) == before  # --overwrite had not deleted anything yet
