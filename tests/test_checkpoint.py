"""Run-folder checkpoints: layout, round trips (arrays, a tied GPT, AdamW state), pruning,
corruption of every file caught with the file named, and a writer killed at random moments."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import cgad
from cgad import checkpoint
from cgad.models.gpt import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# children import the same cgad as this process (installed, or an in-tree build)
CGAD_PATH = os.path.dirname(os.path.dirname(os.path.abspath(cgad.__file__)))


def arrays(seed):
    rng = np.random.default_rng(seed)
    model = {"a.weight": rng.standard_normal((4, 3)).astype(np.float32),
             "a.bias": rng.standard_normal(4).astype(np.float32)}
    optim = {"state.0.exp_avg": rng.standard_normal((4, 3)).astype(np.float32)}
    return model, optim


def test_layout_round_trip_and_pruning(tmp_path):
    run = str(tmp_path / "run")
    for step in (10, 20, 30):
        model, optim = arrays(step)
        path = checkpoint.write_checkpoint(run, step, model, optim, {"note": step}, keep=2)
        assert path == os.path.join(run, f"ckpt-{step}")
    assert sorted(os.listdir(run)) == ["ckpt-20", "ckpt-30", "latest"]
    assert open(os.path.join(run, "latest")).read() == "ckpt-30\n"
    assert sorted(os.listdir(os.path.join(run, "ckpt-30"))) == \
        ["model.safetensors", "optim.safetensors", "state.json"]
    model_t, optim_t, state = checkpoint.read_checkpoint(run)
    expected_model, expected_optim = arrays(30)
    for got, want in ((model_t, expected_model), (optim_t, expected_optim)):
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    assert state["step"] == 30 and state["note"] == 30
    assert checkpoint.read_checkpoint(os.path.join(run, "ckpt-20"))[2]["note"] == 20


def _corrupt(path, how):
    data = bytearray(open(path, "rb").read())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
    elif how == "truncate":
        data = data[: len(data) // 2]
    elif how == "drop-last-byte":
        data = data[:-1]
    elif how == "empty":
        data = b""
    elif how == "garbage":
        data = bytes(np.random.default_rng(len(data)).integers(0, 256, len(data), np.uint8))
    elif how == "edit":  # still valid JSON, one value changed
        data = data.replace(b'"note": 5', b'"note": 6')
    open(path, "wb").write(bytes(data))


CORRUPTIONS = [(f, how) for f in ("model.safetensors", "optim.safetensors", "state.json")
               for how in ("flip", "truncate", "drop-last-byte", "empty", "garbage")]
CORRUPTIONS += [("state.json", "edit")]
CORRUPTIONS += [("latest", how) for how in ("flip", "truncate", "drop-last-byte", "empty",
                                            "garbage")]


@pytest.mark.parametrize("fname,how", CORRUPTIONS)
def test_corruption_raises_value_error_naming_the_file(tmp_path, fname, how):
    model, optim = arrays(0)
    path = checkpoint.write_checkpoint(str(tmp_path), 5, model, optim, {"note": 5})
    damaged = os.path.join(str(tmp_path) if fname == "latest" else path, fname)
    _corrupt(damaged, how)
    for source in (str(tmp_path), path):  # through `latest`, and the folder itself
        if fname == "latest" and source == path:
            continue
        with pytest.raises(ValueError) as e:
            checkpoint.read_checkpoint(source)
        assert damaged in str(e.value)


def test_latest_naming_a_missing_checkpoint_names_the_file(tmp_path):
    model, optim = arrays(0)
    checkpoint.write_checkpoint(str(tmp_path), 5, model, optim, {})
    open(tmp_path / "latest", "w").write("ckpt-7\n")
    with pytest.raises(FileNotFoundError, match=r"latest names ckpt-7"):
        checkpoint.read_checkpoint(str(tmp_path))


def test_missing_things(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoint.read_checkpoint(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.read_checkpoint(str(tmp_path))
    model, optim = arrays(0)
    path = checkpoint.write_checkpoint(str(tmp_path), 1, model, optim, {})
    os.remove(os.path.join(path, "optim.safetensors"))
    with pytest.raises(FileNotFoundError, match="optim.safetensors"):
        checkpoint.read_checkpoint(path)


def tiny_gpt(seed):
    cgad.manual_seed(seed)
    return GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=16))


def train_steps(model, opt, steps, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = cgad.tensor(rng.integers(0, 13, (2, 8)))
        opt.zero_grad()
        _, loss = model(x, x)
        loss.backward()
        opt.step()


def test_gpt_and_adamw_round_trip(tmp_path):
    model = tiny_gpt(0)
    opt = model.configure_optimizers(0.1, 1e-2)
    train_steps(model, opt, 3)
    checkpoint.save_checkpoint(str(tmp_path), 3, model, opt, {"extra": [1, 2]})
    names = set(checkpoint.read_checkpoint(str(tmp_path))[0])
    assert "lm_head.weight" not in names and "transformer.wte.weight" in names  # tied: once

    other = tiny_gpt(1)
    other_opt = other.configure_optimizers(0.0, 1.0)
    state = checkpoint.load_checkpoint(str(tmp_path), other, other_opt)
    assert state["step"] == 3 and state["extra"] == [1, 2]
    for (n, p), (_, q) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
    assert other_opt.get_alpha() == 1e-2 and other_opt.param_groups[0]["weight_decay"] == 0.1
    a, b = opt.state_dict(), other_opt.state_dict()
    for i in a["state"]:
        assert a["state"][i]["step"] == b["state"][i]["step"] == 3
        np.testing.assert_array_equal(a["state"][i]["exp_avg_sq"], b["state"][i]["exp_avg_sq"])
    # the tie survived loading, and both continue identically
    other.transformer.wte.weight.normal_(0.0, 1.0)
    np.testing.assert_array_equal(other.lm_head.weight.numpy(),
                                  other.transformer.wte.weight.numpy())
    checkpoint.load_checkpoint(str(tmp_path), other, other_opt)
    train_steps(model, opt, 2, seed=7)
    train_steps(other, other_opt, 2, seed=7)
    for (n, p), (_, q) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)


def test_wrong_model_is_a_value_error(tmp_path):
    model = tiny_gpt(0)
    checkpoint.save_checkpoint(str(tmp_path), 1, model, model.configure_optimizers(0.1, 1e-3), {})
    cgad.manual_seed(0)
    bigger = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=2, n_head=2, n_embd=16))
    with pytest.raises(ValueError):
        checkpoint.load_checkpoint(str(tmp_path), bigger)


WRITER = """
import sys, numpy as np
from cgad import checkpoint
run = sys.argv[1]
step = checkpoint.read_state(checkpoint.resolve_checkpoint(run))["step"] if checkpoint.latest_checkpoint(run) else 0
while True:
    step += 1
    big = np.full((256, 1024), step, dtype=np.float32)  # 1 MiB, so writes take a while
    checkpoint.write_checkpoint(run, step, {"w": big}, {"state.0.m": big[:4]}, {"n": step})
"""


def _latest_step(run):
    path = checkpoint.latest_checkpoint(run)
    return int(os.path.basename(path)[len("ckpt-"):]) if path else 0


def test_kill_at_random_moments_leaves_a_complete_checkpoint(tmp_path):
    env = dict(os.environ, PYTHONPATH=CGAD_PATH)
    rng = np.random.default_rng(0)
    run = str(tmp_path / "run")
    last = 0
    os.makedirs(run)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, run], env=env)
        deadline = time.time() + 60
        while _latest_step(run) <= last and time.time() < deadline:
            time.sleep(0.01)  # wait for this writer's first checkpoint, then kill it anywhere
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        model_t, optim_t, state = checkpoint.read_checkpoint(run)  # verifies hashes
        step = state["step"]
        assert state["n"] == step and np.all(model_t["w"] == step)
        assert step > last  # each writer went on from the previous one's latest
        last = step
    leftovers = [n for n in os.listdir(run) if n.startswith(".tmp-")]
    assert len(leftovers) <= 1  # at most the last killed writer's; earlier ones were pruned


@pytest.mark.parametrize("fail_at", ["optim.safetensors", "state.json", "latest"])
def test_a_failed_write_names_the_file_removes_the_temporary_folder_keeps_latest(
        tmp_path, monkeypatch, fail_at):
    run = str(tmp_path)
    model, optim = arrays(0)
    checkpoint.write_checkpoint(run, 1, model, optim, {})
    real_save, real_open = checkpoint.save_file, open

    def save_file(tensors, path):
        if path.endswith(fail_at):  # what safetensors raises on a full disk
            raise checkpoint.SafetensorError("Error while serializing: I/O error: No space "
                                             "left on device (os error 28)")
        real_save(tensors, path)

    def full_open(path, mode="r", *a, **kw):
        if os.path.basename(str(path)) in (fail_at, fail_at + ".tmp") and "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    monkeypatch.setattr("builtins.open", full_open)
    with pytest.raises(checkpoint.WriteError) as e:
        checkpoint.write_checkpoint(run, 2, model, optim, {})
    assert e.value.errno == 28 and e.value.strerror == "No space left on device"
    assert os.path.basename(e.value.filename) == fail_at
    monkeypatch.undo()
    assert sorted(n for n in os.listdir(run) if n != "ckpt-2") == ["ckpt-1", "latest"]
    assert open(os.path.join(run, "latest")).read() == "ckpt-1\n"
    checkpoint.read_checkpoint(run)


def test_write_json_replaces_whole_or_names_the_file(tmp_path, monkeypatch):
    path = str(tmp_path / "config.json")
    checkpoint.write_json(path, {"a": 1})
    monkeypatch.setattr(checkpoint.json, "dump", lambda *a, **k: (_ for _ in ()).throw(
        OSError(13, "Permission denied")))
    with pytest.raises(checkpoint.WriteError, match="Permission denied") as e:
        checkpoint.write_json(path, {"a": 2})
    assert e.value.filename == path and os.listdir(tmp_path) == ["config.json"]
    monkeypatch.undo()
    assert open(path).read().replace(" ", "").replace("\n", "") == '{"a":1}'
