"""The command lines, run as a user runs them: train/gpt2.py (log format, falling loss, run
folder, --check, an exact --resume after a kill and after repeated kill -9 at random moments, a
damaged run folder, --on-nan, flags given as 0, --log-every, progress lines, missing vocabulary,
too little text, --init-from, --device), train/prepare_data.py and train/sample.py."""
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cgad
from cgad import checkpoint
from cli_helpers import (ROOT, SLOW_WRITES, SMALL, STEP_RE, VAL_RE, assert_user_error, env,
                         offline_env, records, run, steps)
from conftest import shared_data

SHARED = shared_data()


def test_help_lists_every_flag():
    out = run("gpt2.py", "--help").stdout
    for flag in ("--data", "--tokenizer", "--vocab-dir", "--model", "-B", "-T",
                 "--total-batch-size", "--max-steps", "--lr", "--min-lr", "--warmup-steps",
                 "--weight-decay", "--grad-clip", "--val-every", "--val-steps", "--ckpt-every",
                 "--sample-every", "--prompt", "--num-samples", "--out", "--resume", "--seed",
                 "--device", "--threads", "--check", "--on-nan", "--overwrite", "--log-every",
                 "--init-from", "--temperature", "--top-k"):
        assert re.search(rf"(^|\s){re.escape(flag)}[\s,]", out), flag


def test_short_run_logs_learns_and_fills_the_run_folder(tmp_path, text_file):
    out = str(tmp_path / "run")
    proc = run("gpt2.py", "--data", text_file, "--tokenizer", "char", "--max-steps", "40",
               "--val-every", "20", "--out", out, "--prompt", "ROMEO:", *SMALL)
    lines = proc.stdout.splitlines()
    log = [x for x in lines if x.startswith(("step", "validation"))]
    assert VAL_RE.match(log[0]) and log[1].startswith("step     0 |")
    matched = [STEP_RE.match(x) for x in log if x.startswith("step")]
    assert all(matched) and [int(m.group(1)) for m in matched] == list(range(40))
    losses = [float(m.group(2)) for m in matched]
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


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, text_file):
    args = ["--data", text_file, "--tokenizer", "char", "--max-steps", "24", "--val-every", "8",
            "--threads", "1", *SMALL]
    full = steps(run("gpt2.py", *args, "--out", str(tmp_path / "a")).stdout)

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
    got = steps(resumed)
    assert min(got) in (8, 16) and max(got) == 23
    assert all(got[s] == full[s] for s in got)  # losses, lr and norms to the printed digit


KILL_TRIALS = int(os.environ.get("CGAD_TEST_KILL_TRIALS", "8"))  # more for a longer soak


def _writing(out, pid=None):
    """Whether a checkpoint write is under way or was cut short: by process `pid` (its temporary
    checkpoint folder), or by any process (also the `latest.tmp` of its last phase)."""
    if pid is not None:
        return any(n.startswith(".tmp-") and n.endswith(f"-{pid}") for n in os.listdir(out))
    return any(n.startswith(".tmp-") or n == "latest.tmp" for n in os.listdir(out))


def test_kill_9_at_random_moments_then_resume_matches_uninterrupted_run(tmp_path, text_file):
    n_steps = 6 * KILL_TRIALS  # enough work left for every trial to interrupt
    args = ["--data", text_file, "--tokenizer", "char", "--max-steps", str(n_steps),
            "--val-every", "6", "--ckpt-every", "2", "--threads", "1", *SMALL]
    out_a, out_b = str(tmp_path / "a"), str(tmp_path / "b")
    run("gpt2.py", *args, "--out", out_a)
    expected = records(out_a)
    assert [r["step"] for r in expected if "loss" in r] == list(range(n_steps))

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
    assert records(out_b) == expected  # every step's loss, lr, norm and val loss, exactly
    final_a, final_b = checkpoint.read_checkpoint(out_a)[0], checkpoint.read_checkpoint(out_b)[0]
    assert all(np.array_equal(final_a[k], final_b[k]) for k in final_a)
    assert not _writing(out_b)  # killed writers' leftovers were pruned by later checkpoints
    print(f"{kills} kills ({in_write} inside a checkpoint write), {resumes} resumes: "
          f"all {len(expected)} records equal the uninterrupted run's")


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
    assert len(steps(proc.stdout)) == 3


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


def test_flags_given_as_zero_mean_zero(tmp_path, text_file):
    base = ["--data", text_file, "--tokenizer", "char", *SMALL]
    for flag in ("-B", "-T", "--total-batch-size", "--threads"):
        proc = run("gpt2.py", *base, flag, "0", "--out", str(tmp_path / "x"), check=False)
        assert_user_error(proc, f"{flag} must be at least 1, got 0")
    for flag, value in (("--lr", "-1"), ("--val-every", "-2"), ("--top-k", "-1"),
                        ("--temperature", "-0.5"), ("--lr", "nan")):
        proc = run("gpt2.py", *base, flag, value, "--out", str(tmp_path / "x"), check=False)
        assert_user_error(proc, flag)
    assert not os.path.exists(tmp_path / "x")  # a failed start leaves no folder behind

    out = str(tmp_path / "lr0")  # --lr 0 trains at lr 0, not at the default 1e-3
    proc = run("gpt2.py", *base, "--lr", "0", "--max-steps", "2", "--out", out)
    assert all("| lr 0.0000e+00 |" in x for x in steps(proc.stdout).values())
    assert json.load(open(os.path.join(out, "config.json")))["args"]["lr"] == 0

    out = str(tmp_path / "eval-only")  # --max-steps 0 evaluates and samples only
    proc = run("gpt2.py", *base, "--max-steps", "0", "--prompt", "KING", "--out", out)
    assert not steps(proc.stdout)
    assert sum(bool(VAL_RE.match(x)) for x in proc.stdout.splitlines()) == 1
    assert "--- sample 0 at step 0:\nKING" in proc.stdout

    out = str(tmp_path / "no-val")  # --val-every 0: evaluate at the end, still checkpoint
    proc = run("gpt2.py", *base, "--max-steps", "3", "--val-every", "0", "--out", out)
    assert sum(bool(VAL_RE.match(x)) for x in proc.stdout.splitlines()) == 1
    assert open(os.path.join(out, "latest")).read() == "ckpt-3\n"

    out = str(tmp_path / "ckpt0")  # --ckpt-every 0: only the last step's checkpoint
    run("gpt2.py", *base, "--max-steps", "4", "--val-every", "2", "--ckpt-every", "0",
        "--out", out)
    assert sorted(n for n in os.listdir(out) if n.startswith("ckpt-")) == ["ckpt-4"]


def test_log_every_and_progress_lines(tmp_path, text_file):
    out = str(tmp_path / "run")
    proc = run("gpt2.py", "--data", text_file, "--tokenizer", "char", "--max-steps", "10",
               "--val-every", "5", "--log-every", "3", "--out", out, *SMALL)
    lines = proc.stdout.splitlines()
    assert sorted(steps(proc.stdout)) == [0, 3, 6, 9]
    assert [r["step"] for r in records(out) if "loss" in r] == list(range(10))
    # every other line may not look like a step line: programs parse those
    assert all(STEP_RE.match(x) for x in lines if re.match(r"^step +\d+ \|", x))
    assert [x for x in lines if x.startswith("evaluating at step")] == \
        [f"evaluating at step {s} (2 batches)" for s in (0, 5, 10)]
    progress = [x for x in lines if x.startswith("progress: ")]
    assert [x.split()[1] for x in progress] == ["0/10", "5/10", "10/10"]
    assert all(re.search(r"\| elapsed \d+:\d\d:\d\d \| eta (\d+:\d\d:\d\d|unknown)$", x)
               for x in progress)
    best = min(r["val_loss"] for r in records(out) if "val_loss" in r)
    assert re.match(rf"^done: 10/10 steps in \d+:\d\d:\d\d \| final validation loss: "
                    rf"\d\.\d{{4}} \| best: {best:.4f} at step \d+ \| checkpoint: "
                    rf"{re.escape(os.path.join(out, 'ckpt-10'))}$", lines[-1]), lines[-1]


def test_missing_gpt2_vocabulary_is_one_error_line(tmp_path, text_file):
    for script, args in (("gpt2.py", ["--data", text_file, "--tokenizer", "gpt2", "--out",
                                      str(tmp_path / "run")]),
                         ("prepare_data.py", ["--input", text_file, "--tokenizer", "gpt2",
                                              "--out-dir", str(tmp_path / "d")])):
        proc = run(script, *args, check=False, environ=offline_env(tmp_path))
        assert_user_error(proc, "GPT-2 BPE needs its vocabulary files encoder.json and "
                                "vocab.bpe")
        assert "--vocab-dir" in proc.stderr and "$CGAD_VOCAB_DIR" in proc.stderr
    assert not os.path.exists(tmp_path / "run")


def test_prepare_data_records_the_tokenizer_and_prints_the_next_command(tmp_path):
    sample = shared_data("tinystories", "tinystories_sample.txt")
    vocab = shared_data("gpt2")
    if not os.path.isfile(sample) or not os.path.isfile(os.path.join(vocab, "vocab.bpe")):
        pytest.skip("shared data absent ($CGAD_TEST_DATA)")
    offline = offline_env(tmp_path)
    proc = run("prepare_data.py", "--input", sample, "--out-dir", "shards", "--tokenizer",
               "gpt2", "--vocab-dir", vocab, "--val-fraction", "0.2", cwd=str(tmp_path))
    hint = proc.stdout.splitlines()[-1]
    assert hint.startswith("train with: python ") and hint.endswith(" --data shards")
    # the exact command works as printed, with no vocabulary to be found but the recorded one
    command = shlex.split(hint[len("train with: "):])
    command[0] = sys.executable
    trained = subprocess.run(command + ["--max-steps", "1", "-B", "2", "-T", "32",
                                        "--val-steps", "1", "--num-samples", "0"],
                             capture_output=True, text=True, env=offline, cwd=str(tmp_path),
                             timeout=300)
    assert trained.returncode == 0, trained.stderr
    assert "model: tiny (6.85M parameters" in trained.stdout
    sample_proc = run("sample.py", "--prompt", "Once upon", "--max-new-tokens", "3",
                      cwd=str(tmp_path), environ=offline)  # --ckpt defaults to out
    assert "--- sample 0:\nOnce upon" in sample_proc.stdout


def test_text_too_short_for_a_batch_says_what_fits(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be, that is the question. " * 4)
    proc = run("gpt2.py", "--data", str(short), "--tokenizer", "char", "-B", "4", "-T", "32",
               "--out", str(tmp_path / "run"), check=False)
    assert_user_error(proc, f"the validation part of {short} has 18 tokens, too few for one "
                            f"batch of -B 4 x -T 32 (which needs 129); -B 1 -T 17 would fit")
    short.write_text("To be, or not to be, that is the question. " * 45)
    proc = run("gpt2.py", "--data", str(short), "--tokenizer", "char", "-B", "64", "-T", "32",
               "--out", str(tmp_path / "run"), check=False)
    assert_user_error(proc, f"the training part of {short} has 1,741 tokens, too few for one "
                            f"batch of -B 64 x -T 32 (which needs 2,049); -B 6 -T 32 would fit")
    assert not os.path.exists(tmp_path / "run")


def write_tiny_gpt2(folder):
    """GPT-2 weights as a Hugging Face folder (config.json + model.safetensors, nanoGPT names),
    tiny but with GPT-2's 50257-token vocabulary."""
    from safetensors.numpy import save_file
    from cgad.models.gpt import GPT, GPTConfig
    cgad.manual_seed(5)
    model = GPT(GPTConfig(block_size=64, vocab_size=50257, n_layer=1, n_head=2, n_embd=16))
    tensors = checkpoint.model_tensors(model)
    os.makedirs(folder)
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 64,
                   "vocab_size": 50257}, f)
    return tensors


def test_init_from_pretrained_weights(tmp_path, text_file):
    vocab = shared_data("gpt2")
    if not os.path.isfile(os.path.join(vocab, "vocab.bpe")):
        pytest.skip("shared GPT-2 vocab files absent ($CGAD_TEST_DATA)")
    weights = write_tiny_gpt2(str(tmp_path / "gpt2-tiny"))
    out = str(tmp_path / "run")
    args = ["--data", text_file, "--vocab-dir", vocab, "-B", "2", "-T", "32", "--val-steps",
            "1", "--num-samples", "0"]
    proc = run("gpt2.py", *args, "--init-from", str(tmp_path / "gpt2-tiny"), "--max-steps",
               "1", "--lr", "0", "--out", out)
    assert "tokenizer gpt2 (vocab 50257)" in proc.stdout  # GPT-2 BPE without --tokenizer
    trained = checkpoint.read_checkpoint(out)[0]  # lr 0: the weights are the pretrained ones
    assert trained.keys() == weights.keys()
    assert all(np.array_equal(trained[k], weights[k]) for k in weights)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["model"]["n_embd"] == 16 and config["tokenizer"]["type"] == "gpt2"
    assert config["args"]["init_from"] == str(tmp_path / "gpt2-tiny")

    proc = run("gpt2.py", *args, "--init-from", str(tmp_path / "gpt2-tiny"), "--model", "tiny",
               "--out", str(tmp_path / "x"), check=False)
    assert_user_error(proc, "--init-from takes the model size from the weights")
    proc = run("gpt2.py", *args, "--init-from", str(tmp_path / "gpt2-tiny"), "--tokenizer",
               "char", "--out", str(tmp_path / "x"), check=False)
    assert_user_error(proc, "--init-from starts from GPT-2 weights")
    proc = run("gpt2.py", *args, "--init-from", str(tmp_path / "nope"), "--out",
               str(tmp_path / "x"), check=False)
    assert_user_error(proc, "pretrained weights not found")


def test_device_flag(tmp_path, text_file):
    base = ["--data", text_file, "--tokenizer", "char", "--max-steps", "3", "--threads", "1",
            "--num-samples", "0", *SMALL]
    proc = run("gpt2.py", *base, "--device", "bogus", "--out", str(tmp_path / "x"), check=False)
    assert_user_error(proc, "--device bogus: unknown device 'bogus'")
    auto = run("gpt2.py", *base, "--out", str(tmp_path / "auto")).stdout
    expected = "cuda" if cgad.cuda.is_available() else "cpu"  # auto never picks "test"
    assert f"device {expected}," in auto
    on_test = run("gpt2.py", *base, "--device", "test", "--out", str(tmp_path / "test")).stdout
    assert "device test," in on_test
    cpu = auto if expected == "cpu" else \
        run("gpt2.py", *base, "--device", "cpu", "--out", str(tmp_path / "cpu")).stdout
    assert steps(on_test) == steps(cpu)  # the test device runs the CPU kernels


def test_dtype_flag_trains_under_autocast_and_is_kept_on_resume(tmp_path, text_file):
    out = str(tmp_path / "bf16")
    base = ["--data", text_file, "--tokenizer", "char", "--threads", "1", "--num-samples", "0", *SMALL]
    first = run("gpt2.py", *base, "--max-steps", "3", "--dtype", "bfloat16", "--out", out).stdout
    assert ", bfloat16" in first and sorted(steps(first)) == [0, 1, 2]
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["args"]["dtype"] == "bfloat16"
    fp32 = run("gpt2.py", *base, "--max-steps", "3", "--out", str(tmp_path / "fp32")).stdout
    assert ", float32" in fp32 and steps(fp32) != steps(first)  # bf16 matmuls change the last digits
    loss = lambda text: [float(m.group(2)) for x in text.splitlines() if (m := STEP_RE.match(x))]  # noqa: E731
    np.testing.assert_allclose(loss(first), loss(fp32), atol=2e-2)
    resumed = run("gpt2.py", "--resume", "--out", out, "--max-steps", "5").stdout
    assert ", bfloat16" in resumed  # the run's own dtype


def test_sample_cli(tmp_path, finished_run):
    shutil.copytree(finished_run, tmp_path / "out")
    greedy = run("sample.py", "--temperature", "0", "--num-samples", "2", "--max-new-tokens",
                 "15", "--prompt", "KING", cwd=str(tmp_path)).stdout  # --ckpt: out
    texts = greedy.split("--- sample ")[1:]
    assert len(texts) == 2 and texts[0][1:] == texts[1][1:]  # greedy: the same text twice
    for args, starts in ((["--temperature", "-1"], "--temperature must be >= 0"),
                         (["--num-samples", "0"], "--num-samples must be at least 1"),
                         (["--top-k", "-3"], "--top-k must be >= 0"),
                         (["--device", "bogus"], "--device bogus"),
                         (["--prompt", "\u00e9"], "CharTokenizer: character"),
                         (["--ckpt", str(tmp_path / "none")], "checkpoint or run folder not "
                                                              "found"),
                         (["--bogus"], "unrecognized arguments: --bogus")):
        assert_user_error(run("sample.py", *args, cwd=str(tmp_path), check=False), starts)


def test_usage_errors_are_one_line(tmp_path):
    proc = run("gpt2.py", "--bogus", "--out", str(tmp_path / "x"), check=False)
    assert_user_error(proc, "unrecognized arguments: --bogus")
    proc = run("gpt2.py", "-B", "many", "--out", str(tmp_path / "x"), check=False)
    assert_user_error(proc, "argument -B/--batch-size: invalid int value: 'many'")
    proc = run("gpt2.py", "--resume", "--overwrite", "--out", str(tmp_path / "x"), check=False)
    assert_user_error(proc, "--resume continues the run in --out and --overwrite replaces it")
    proc = run("gpt2.py", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x"),
               check=False)
    assert_user_error(proc, f"no data at {tmp_path / 'nope'}")
    assert os.listdir(tmp_path) == []  # a failed start leaves no folder behind
