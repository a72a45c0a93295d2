"""The run folder's rules (docs/run-folder.md), with real processes: one trainer per folder
(.lock), every check before anything in the folder changes, no run replaced without
--overwrite, --resume's flag rules, and a full disk or a read-only folder as one error line."""
import contextlib
import json
import os
import re
import shutil
import subprocess

import pytest

from cgad import checkpoint
from cli_helpers import (SMALL, assert_user_error, offline_env, popen, records, run, snapshot,
                         steps)


def copy_run(finished_run, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(finished_run, out)
    return out


def test_a_folder_in_use_is_refused_whatever_else_is_wrong(tmp_path, text_file):
    out = str(tmp_path / "run")
    a = popen("gpt2.py", "--data", text_file, "--tokenizer", "char", "--max-steps", "100000",
              "--val-every", "5", "--ckpt-every", "5", "--threads", "1", "--out", out, *SMALL)
    try:
        for line in a.stdout:
            if line.startswith("step     6"):
                break
        for args in ([], ["--resume"], ["--overwrite"], ["-B", "0", "--data", "nope"],
                     ["--bogus-flag"]):
            proc = run("gpt2.py", *args, "--out", out, check=False)
            assert_user_error(proc, f"{out} is in use by pid {a.pid}")
        assert a.poll() is None  # the first trainer goes on, its run intact
        assert open(os.path.join(out, ".lock")).read() == f"{a.pid}\n"
    finally:
        a.kill()
        a.wait()
        a.stdout.close()
        a.stderr.close()
    done = [r["step"] for r in records(out) if "loss" in r]
    assert done == list(range(len(done)))  # one writer: no step twice

    # killed, it leaves its pid behind; the next trainer takes the lock over and says so
    proc = run("gpt2.py", "--resume", "--max-steps", "0", "--num-samples", "0", "--out", out)
    assert re.search(rf"^notice: {re.escape(out)}/\.lock was left by pid {a.pid}, which no "
                     r"longer runs there", proc.stdout, re.M)
    assert "nothing to train" in proc.stdout
    assert open(os.path.join(out, ".lock")).read() == ""  # released on a clean exit


def test_rerunning_on_a_run_says_what_it_holds_and_the_ways_on(tmp_path, finished_run,
                                                                text_file):
    out = copy_run(finished_run, tmp_path)
    before = snapshot(out)
    args = ["--data", text_file, "--tokenizer", "char", "--max-steps", "3", "--val-every", "3",
            *SMALL, "--out", out]
    proc = run("gpt2.py", *args, check=False)
    assert_user_error(proc, f"{out} holds a run at step 2 of 2 (ckpt-2): continue it with "
                            f"--resume, start over with --overwrite (deletes it), or give "
                            f"another --out")
    assert snapshot(out) == before

    proc = run("gpt2.py", *args, "--overwrite")
    assert f"--overwrite: removed a run at step 2 of 2 (ckpt-2) from {out}" in proc.stdout
    assert sorted(n for n in os.listdir(out) if n.startswith("ckpt-")) == ["ckpt-3"]
    assert [r["step"] for r in records(out) if "loss" in r] == [0, 1, 2]


@pytest.mark.parametrize("bad", [
    ["--overwrite", "--data", "nope.bin"],
    ["--overwrite", "--device", "bogus"],
    ["--overwrite", "-B", "0"],
    ["--overwrite", "--tokenizer", "gpt2"],  # no GPT-2 vocabulary to be found
    ["--resume", "--device", "bogus"],
    ["--resume", "--model", "mini"],
    ["--resume", "--max-steps", "9", "--damage"],
])
def test_a_start_that_fails_changes_nothing(tmp_path, finished_run, text_file, bad):
    out = copy_run(finished_run, tmp_path)
    if "--damage" in bad:  # a checkpoint that only fails when it is loaded
        bad = bad[:-1]
        path = os.path.join(out, "ckpt-2", "optim.safetensors")
        with open(path, "r+b") as f:
            f.seek(200)
            f.write(b"\xff\xff")
    before = snapshot(out)
    data = [] if "--resume" in bad else ["--data", text_file, *SMALL]
    proc = run("gpt2.py", *data, *bad, "--out", out, check=False,
               environ=offline_env(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert snapshot(out) == before  # config.json, checkpoints, metrics: byte for byte


def test_resume_flag_rules(tmp_path, finished_run, text_file):
    out = copy_run(finished_run, tmp_path)
    for args, message in (
            (["--model", "mini"], "--model mini differs from the run's tiny"),
            (["-T", "16"], "-T 16 differs from the run's 32"),
            (["-B", "2"], "-B 2 differs from the run's 4"),
            (["--tokenizer", "gpt2"], "--tokenizer gpt2 differs from the run's char"),
            (["--data", str(tmp_path / "other.txt")],
             f"--data {tmp_path / 'other.txt'} differs from the run's {text_file}"),
            (["--init-from", "gpt2"],
             f"--init-from {os.path.abspath('gpt2')} differs from the run's none")):
        proc = run("gpt2.py", "--resume", *args, "--out", out, check=False)
        assert_user_error(proc, "--resume: " + message)

    before = json.load(open(os.path.join(out, "config.json")))["args"]
    proc = run("gpt2.py", "--resume", "--max-steps", "4", "--lr", "5e-4", "--log-every", "2",
               "--val-every", "4", "--out", out)
    changes = [x for x in proc.stdout.splitlines() if x.startswith("resume: ")]
    assert changes == [
        "resume: --max-steps changed from 2 to 4 (the cosine decay is re-stretched to end at "
        "step 4: the lr from here on differs from the 2-step schedule's)",
        "resume: --lr changed from 0.001 to 0.0005",
        "resume: --val-every changed from 2 to 4",
        "resume: --log-every changed from 1 to 2"]
    assert sorted(steps(proc.stdout)) == [2, 3]
    after = json.load(open(os.path.join(out, "config.json")))["args"]  # recorded once loaded
    assert (after["max_steps"], after["lr"], after["log_every"]) == (4, 5e-4, 2)
    assert {k: v for k, v in after.items() if k not in ("max_steps", "lr", "log_every",
                                                         "val_every")} == \
        {k: v for k, v in before.items() if k not in ("max_steps", "lr", "log_every",
                                                      "val_every")}


@contextlib.contextmanager
def tmpfs(path, size):
    """A small tmpfs mounted at path (needs root; skips the test otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    os.makedirs(path)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path])


def test_a_full_disk_is_one_error_line_and_loses_nothing(tmp_path, text_file):
    args = ["--data", text_file, "--tokenizer", "char", "--val-every", "2", "--threads", "1",
            "--num-samples", "0", *SMALL]
    reference = str(tmp_path / "reference")
    run("gpt2.py", *args, "--max-steps", "2", "--out", reference)
    run("gpt2.py", "--resume", "--max-steps", "4", "--out", reference)
    with tmpfs(str(tmp_path / "disk"), "32m") as disk:
        out = os.path.join(disk, "run")
        run("gpt2.py", *args, "--max-steps", "2", "--out", out)
        ckpt_bytes = sum(os.path.getsize(os.path.join(out, "ckpt-2", n))
                         for n in os.listdir(os.path.join(out, "ckpt-2")))
        free = os.statvfs(disk)
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:  # leave room for the metrics, not for a checkpoint
            f.write(b"\0" * (free.f_bavail * free.f_frsize - ckpt_bytes // 2))
        proc = run("gpt2.py", "--resume", "--max-steps", "4", "--out", out, check=False)
        assert_user_error(proc, out)
        assert re.match(rf"^error: {re.escape(out)}/\.tmp-ckpt-4-\d+/(model|optim)\.safetensors:"
                        r" No space left on device$", proc.stderr), proc.stderr
        assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]  # removed
        assert checkpoint.latest_checkpoint(out) == os.path.join(out, "ckpt-2")
        checkpoint.read_checkpoint(out)
        os.remove(filler)  # room again: the run goes on as if nothing had happened
        run("gpt2.py", "--resume", "--out", out)
        assert records(out) == records(reference)


def test_a_read_only_run_folder_is_one_error_line(tmp_path, finished_run, text_file):
    with tmpfs(str(tmp_path / "disk"), "32m") as disk:
        out = os.path.join(disk, "run")
        shutil.copytree(finished_run, out)
        if subprocess.run(["mount", "-o", "remount,ro", disk]).returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only")
        proc = run("gpt2.py", "--resume", "--max-steps", "4", "--out", out, check=False)
        assert_user_error(proc, f"{out}/.lock: Read-only file system")
        proc = run("gpt2.py", "--data", text_file, "--out", os.path.join(disk, "new"),
                   check=False)
        assert_user_error(proc, f"{os.path.join(disk, 'new')}: Read-only file system")
        proc = run("sample.py", "--ckpt", out, "--max-new-tokens", "5")  # reading still works
        assert "--- sample 0:" in proc.stdout


def test_a_folder_without_write_permission_is_one_error_line(tmp_path, finished_run):
    if os.geteuid() == 0:
        pytest.skip("root writes whatever the permissions say")
    out = copy_run(finished_run, tmp_path)
    os.chmod(out, 0o555)
    try:
        proc = run("gpt2.py", "--resume", "--max-steps", "4", "--out", out, check=False)
        assert_user_error(proc, f"{out}: Permission denied")
    finally:
        os.chmod(out, 0o755)


def test_a_run_killed_before_its_first_checkpoint_offers_no_resume(tmp_path, finished_run,
                                                                   text_file):
    out = copy_run(finished_run, tmp_path)
    for name in ("latest", "ckpt-2"):  # as a kill -9 before the first checkpoint leaves it
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
        if os.path.isfile(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    proc = run("gpt2.py", "--data", text_file, "--out", out, check=False)
    assert_user_error(proc, f"{out} holds a run with no checkpoint yet (nothing to resume): "
                            f"start over with --overwrite (deletes it), or give another --out")
