"""Streamed samples from the command lines: train/sample.py on a tiny finished run (the samples
on stdout as they are generated, the summary line on stderr), and the closing sample of
train/gpt2.py with its summary line in the log."""
import re
import shutil

from cli_helpers import run

RATE_RE = re.compile(r"^sampled (\d+) x (\d+) tokens = (\d+) in (\d+\.\d\d) s: (\d+\.\d) tok/s$")


def test_sample_cli_streams_samples_and_reports_the_rate(tmp_path, finished_run):
    shutil.copytree(finished_run, tmp_path / "out")
    proc = run("sample.py", "--num-samples", "3", "--max-new-tokens", "40", "--prompt", "KING",
               "--seed", "3", cwd=str(tmp_path))
    parts = re.split(r"^--- sample (\d):\n", proc.stdout, flags=re.M)
    assert parts[0] == "" and parts[1::2] == ["0", "1", "2"]
    texts = parts[2::2]
    # char-level: 4 prompt characters and 40 new ones, then the sample's newline
    assert all(t.startswith("KING") and t.endswith("\n") and len(t) == 45 for t in texts)
    m = RATE_RE.match(proc.stderr.strip())
    assert m and proc.stderr.count("\n") == 1, proc.stderr
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (3, 40, 120)
    again = run("sample.py", "--num-samples", "3", "--max-new-tokens", "40", "--prompt", "KING",
                "--seed", "3", cwd=str(tmp_path))
    assert again.stdout == proc.stdout  # the seed decides the samples, batch and stream alike


def test_closing_sample_logs_the_rate(tmp_path, finished_run):
    out = str(tmp_path / "run")
    shutil.copytree(finished_run, out)
    proc = run("gpt2.py", "--resume", "--out", out, "--max-steps", "2", "--prompt", "KING",
               "--num-samples", "2", "--max-new-tokens", "20")  # nothing to train: samples
    lines = proc.stdout.splitlines()
    heads = [i for i, x in enumerate(lines) if x.startswith("--- sample ")]
    assert [lines[i] for i in heads] == ["--- sample 0 at step 2:", "--- sample 1 at step 2:"]
    assert all(lines[i + 1].startswith("KING") for i in heads)
    rates = [m for x in lines if (m := RATE_RE.match(x))]
    assert len(rates) == 1 and (int(rates[0].group(1)), int(rates[0].group(2))) == (2, 20)
    assert lines.index(rates[0].group(0)) > heads[-1]  # after the last sample
