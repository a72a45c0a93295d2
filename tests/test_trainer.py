"""Trainer: log format, callbacks, the lr schedule, gradient accumulation, metrics.jsonl, a
resume whose every later loss equals the uninterrupted run's, and non-finite losses (on_nan)."""
import json
import math
import os
import re

import numpy as np
import pytest

import cgad
from cgad.data import DataLoaderLite, write_shard
from cgad.lr import warmup_cosine
from cgad.models.gpt import GPT, GPTConfig
from cgad.trainer import NonFiniteError, Trainer

STEP_RE = re.compile(r"^step +\d+ \| loss: \d+\.\d{6} \| lr \d\.\d{4}e[-+]\d\d \| "
                     r"norm: \d+\.\d{4} \| dt: \d+\.\d{2}ms \| tok/sec: \d+\.\d{2}$")
VAL_RE = re.compile(r"^validation loss: \d+\.\d{4}$")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(0)
    # a learnable stream: mostly an arithmetic pattern, some noise
    tokens = (np.arange(6000) * 7) % 31
    noise = rng.random(6000) < 0.1
    tokens[noise] = rng.integers(0, 31, noise.sum())
    write_shard(folder / "train_0.bin", tokens[:3000])
    write_shard(folder / "train_1.bin", tokens[3000:5000])
    write_shard(folder / "val_0.bin", tokens[5000:])
    return [str(folder / "train_0.bin"), str(folder / "train_1.bin")], str(folder / "val_0.bin")


def make_trainer(shards, out_dir=None, max_steps=8, B=4, T=16, accum=1, seed=0, device="cpu", **kw):
    cgad.manual_seed(seed)
    model = GPT(GPTConfig(block_size=32, vocab_size=31, n_layer=1, n_head=2, n_embd=32)).to(device)
    opt = model.configure_optimizers(0.1, 3e-3)
    train, val = shards
    lines = []
    trainer = Trainer(model, opt, DataLoaderLite(B, T, train), DataLoaderLite(B, T, val),
                      max_steps=max_steps, grad_accum_steps=accum,
                      lr_schedule=warmup_cosine(3e-3, 3e-4, 2, max_steps), val_every=4,
                      val_steps=3, out_dir=out_dir, log=lines.append, **kw)
    return trainer, lines


def test_log_lines_callbacks_and_metrics(shards, tmp_path):
    trainer, lines = make_trainer(shards, str(tmp_path), ckpt_every=4)
    events = {"on_step_end": [], "on_eval": [], "on_checkpoint": []}
    for name in events:
        trainer.add_callback(name, lambda t, info, name=name: events[name].append(info))
    metrics = trainer.run()
    log = [x for x in lines if x.startswith(("step", "validation"))]
    assert VAL_RE.match(log[0]) and STEP_RE.match(log[1]) and log[1].startswith("step     0")
    assert sum(bool(STEP_RE.match(x)) for x in lines) == 8
    assert [e["step"] for e in events["on_eval"]] == [0, 4, 8]
    assert [e["step"] for e in events["on_checkpoint"]] == [4, 8]
    assert events["on_checkpoint"][-1]["path"] == os.path.join(str(tmp_path), "ckpt-8")
    info = events["on_step_end"][0]
    assert set(info) == {"step", "loss", "lr", "norm", "dt_ms", "tok_per_sec"}
    assert info["lr"] == pytest.approx(3e-3 / 2)  # warmup step 1 of 2
    assert info["tok_per_sec"] == pytest.approx(4 * 16 / (info["dt_ms"] / 1000))
    losses = [e["loss"] for e in events["on_step_end"]]
    assert losses[-1] < losses[0]
    assert metrics["loss"] == losses[-1] and metrics["val_loss"] == events["on_eval"][-1]["val_loss"]
    records = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert len(records) == 8 + 3
    assert records[1]["loss"] == losses[0]
    with pytest.raises(ValueError):
        trainer.add_callback("on_epoch", print)


def test_warmup_cosine_schedule():
    lr = warmup_cosine(6e-4, 6e-5, 10, 100)
    assert lr(0) == pytest.approx(6e-5)  # the log line example: step 0 at lr 6.0000e-05
    assert lr(9) == pytest.approx(6e-4)
    mid = 10 + 45
    assert lr(mid) == pytest.approx(6e-5 + 0.5 * (6e-4 - 6e-5))
    assert lr(100) == pytest.approx(6e-5) and lr(500) == pytest.approx(6e-5)
    assert lr(30) == pytest.approx(6e-5 + 0.5 * (1 + math.cos(math.pi * 20 / 90)) * 5.4e-4)


def test_gradient_accumulation_equals_the_bigger_batch(shards):
    one, _ = make_trainer(shards, max_steps=1, B=4, accum=1)
    two, _ = make_trainer(shards, max_steps=1, B=2, accum=2)
    a, b = one.train_step(), two.train_step()
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert a["norm"] == pytest.approx(b["norm"], rel=1e-4)
    # the (clipped) gradients agree; Adam's first step is ~lr*sign(g), which noise would flip
    for (n, p), (_, q) in zip(one.model.named_parameters(), two.model.named_parameters()):
        g1, g2 = p.grad.numpy(), q.grad.numpy()
        assert np.max(np.abs(g1 - g2)) <= 1e-5 * max(np.max(np.abs(g1)), 1e-3), n


class Killed(Exception):
    pass


def test_resume_reproduces_every_later_loss(shards, tmp_path):
    full, full_lines = make_trainer(shards, str(tmp_path / "a"), max_steps=10, ckpt_every=3)
    full.run()
    expected = [x for x in full_lines if x.startswith(("step", "validation"))]

    first, _ = make_trainer(shards, str(tmp_path / "b"), max_steps=10, ckpt_every=3)

    def kill(trainer, info):
        if info["step"] == 7:  # after ckpt-6 and one more logged step
            raise Killed

    first.add_callback("on_step_end", kill)
    with pytest.raises(Killed):
        first.run()
    second, lines = make_trainer(shards, str(tmp_path / "b"), max_steps=10, ckpt_every=3,
                                 seed=99)
    state = second.load_checkpoint()
    assert state["step"] == 6
    second.run()

    def strip_dt(line):
        return re.sub(r" \| dt: .*", "", line)
    got = [strip_dt(x) for x in lines if x.startswith(("step", "validation"))]
    tail = [strip_dt(x) for x in expected[expected.index(next(x for x in expected
                                                               if x.startswith("step     6"))):]]
    assert got == tail  # losses, lrs, norms and validation losses, to the printed digit
    records = [json.loads(x) for x in open(tmp_path / "b" / "metrics.jsonl")]
    reference = [json.loads(x) for x in open(tmp_path / "a" / "metrics.jsonl")]
    assert [(r["step"], r.get("loss"), r.get("val_loss")) for r in records] == \
        [(r["step"], r.get("loss"), r.get("val_loss")) for r in reference]
    final = dict(second.model.named_parameters())
    for n, p in full.model.named_parameters():
        np.testing.assert_array_equal(p.numpy(), final[n].numpy(), err_msg=n)


def test_sampling_does_not_disturb_training(shards):
    plain, _ = make_trainer(shards, max_steps=4)
    sampled, lines = make_trainer(shards, max_steps=4, sample_every=2,
                                  sample_fn=lambda t: str(t.model.generate(
                                      cgad.zeros(1, 1, dtype=cgad.int64), 5).tolist()))
    a, b = plain.run(), sampled.run()
    assert a["loss"] == b["loss"]
    assert sum(x.startswith("[[") for x in lines) == 2  # at steps 2 and 4


def test_bad_arguments(shards):
    with pytest.raises(ValueError, match="out_dir"):
        make_trainer(shards, ckpt_every=2)


def poison(trainer, nan_loss_at=(), inf_norm_at=()):
    """Makes the training loss NaN, or (with a finite loss) the gradient norm infinite, at the
    given steps: a stand-in for a diverging run."""
    forward = trainer.model.forward
    w = trainer.model.transformer.ln_f.weight

    def poisoned(idx, targets=None):
        logits, loss = forward(idx, targets)
        if targets is not None and trainer.model.training:
            if trainer.step in nan_loss_at:
                loss = loss * float("nan")
            if trainer.step in inf_norm_at:  # sqrt'(0) = inf: the value stays, the grad blows up
                loss = loss + (w - w.detach()).sqrt().sum()
        return logits, loss

    trainer.model.forward = poisoned


def params_of(model):
    return {n: p.numpy().copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("how", ["nan_loss_at", "inf_norm_at"])
def test_non_finite_step_stops_naming_it_and_keeps_the_last_good_checkpoint(shards, tmp_path, how):
    out = tmp_path / "run"
    trainer, lines = make_trainer(shards, str(out), max_steps=8, ckpt_every=2)
    poison(trainer, **{how: {5}})
    before = {}
    trainer.add_callback("on_step_end", lambda t, info: before.update(params_of(t.model)))
    with pytest.raises(NonFiniteError, match=r"^step 5: non-finite loss") as e:
        trainer.run()
    assert str(out / "ckpt-4") in str(e.value)
    assert open(out / "latest").read() == "ckpt-4\n" and not (out / "ckpt-6").exists()
    after = params_of(trainer.model)  # no optimizer step was taken with the poisoned grads
    assert all(np.array_equal(before[n], after[n]) for n in before)
    records = [json.loads(x) for x in open(out / "metrics.jsonl")]  # strict JSON: no NaN
    assert records[-1]["step"] == 5 and records[-1]["skipped"] is True
    assert (records[-1]["loss"] is None) == (how == "nan_loss_at") and records[-1]["norm"] is None
    assert lines[-1].startswith("step     5 | loss: ")

    resumed, _ = make_trainer(shards, str(out), max_steps=8, ckpt_every=2)
    assert resumed.load_checkpoint()["step"] == 4
    assert math.isfinite(resumed.run()["loss"])


def test_skip_drops_the_update_warns_and_goes_on(shards, tmp_path):
    trainer, lines = make_trainer(shards, str(tmp_path), max_steps=8, ckpt_every=4,
                                  on_nan="skip")
    poison(trainer, nan_loss_at={3}, inf_norm_at={5})
    snapshots, infos = {}, []

    def watch(t, info):
        snapshots[info["step"]] = params_of(t.model)
        infos.append(info)

    trainer.add_callback("on_step_end", watch)
    metrics = trainer.run()
    for skipped in (3, 5):
        assert all(np.array_equal(snapshots[skipped - 1][n], snapshots[skipped][n])
                   for n in snapshots[skipped])
    assert not all(np.array_equal(snapshots[1][n], snapshots[2][n]) for n in snapshots[2])
    warnings = [x for x in lines if x.startswith("warning:")]
    assert len(warnings) == 2
    assert warnings[0].startswith("warning: step 3: non-finite loss nan")
    assert warnings[1].startswith("warning: step 5: non-finite loss") and "norm inf" in warnings[1]
    assert [i["step"] for i in infos if i.get("skipped")] == [3, 5]
    assert math.isfinite(metrics["loss"]) and metrics["step"] == 7
    assert {"ckpt-4", "ckpt-8", "latest"} <= set(os.listdir(tmp_path))


def test_skip_gives_up_after_too_many_non_finite_steps_in_a_row(shards, tmp_path):
    # a skip leaves the weights as they were, so a broken model would fail every step forever
    trainer, lines = make_trainer(shards, str(tmp_path), max_steps=12, ckpt_every=2,
                                  on_nan="skip")
    trainer.max_skips_in_a_row = 3
    poison(trainer, nan_loss_at={1, 2, 4, 5, 7, 8, 9, 10})  # 2, 2, then 4 in a row
    with pytest.raises(NonFiniteError, match=r"step 9: .*3 steps in a row were non-finite, so "
                                             r"skipping cannot recover \(on_nan=skip\); the last "
                                             r"good checkpoint is .*ckpt-8"):
        trainer.run()
    warnings = [x for x in lines if x.startswith("warning:")]
    assert [int(x.split()[2].rstrip(":")) for x in warnings] == [1, 2, 4, 5, 7, 8]


def test_a_checkpoint_of_non_finite_parameters_is_refused(shards, tmp_path):
    trainer, _ = make_trainer(shards, str(tmp_path), max_steps=8, ckpt_every=2)

    def corrupt(t, info):
        if info["step"] == 3:  # after the step's finite-loss check, before ckpt-4 is written
            t.model.transformer.h[0].mlp.c_fc.bias.fill_(float("inf"))

    trainer.add_callback("on_step_end", corrupt)
    with pytest.raises(NonFiniteError, match="step 4: parameter transformer.h.0.mlp.c_fc.bias"):
        trainer.run()
    assert open(tmp_path / "latest").read() == "ckpt-2\n"


def test_on_nan_must_be_stop_or_skip(shards):
    with pytest.raises(ValueError, match="on_nan"):
        make_trainer(shards, on_nan="ignore")


PROGRESS_RE = re.compile(r"^progress: (\d+)/(\d+) steps \(\d+%\) \| elapsed \d+:\d\d:\d\d \| "
                         r"eta (\d+:\d\d:\d\d|unknown)$")


def test_log_every_progress_lines_and_summary(shards, tmp_path):
    trainer, lines = make_trainer(shards, str(tmp_path), max_steps=10, ckpt_every=5,
                                  log_every=4)
    trainer.run()
    steps = [int(x.split()[1]) for x in lines if STEP_RE.match(x)]
    assert steps == [0, 4, 8, 9]  # every 4th step line and the last
    records = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records if "loss" in r] == list(range(10))  # every step kept
    evals = [i for i, x in enumerate(lines) if VAL_RE.match(x)]
    for i in evals:  # an evaluation is announced, and followed by the progress line
        assert lines[i - 1].startswith("evaluating at step ") and PROGRESS_RE.match(lines[i + 1])
    done = [PROGRESS_RE.match(x).group(1) for x in lines if PROGRESS_RE.match(x)]
    assert done == ["0", "4", "8", "10"]
    # only the step lines may start with "step <n> |": programs parse them
    assert all(STEP_RE.match(x) for x in lines if re.match(r"^step +\d+ \|", x))
    summary = trainer.summary()
    best = min((r["val_loss"], r["step"]) for r in records if "val_loss" in r)
    assert re.match(r"^done: 10/10 steps in \d+:\d\d:\d\d \| final validation loss: \d\.\d{4} \| "
                    rf"best: {best[0]:.4f} at step {best[1]} \| checkpoint: .*ckpt-10$", summary)


def test_progress_every_seconds(shards):
    trainer, lines = make_trainer(shards, max_steps=3, progress_every=0.0)
    trainer.val_loader = None
    trainer.run()
    assert [PROGRESS_RE.match(x).group(1) for x in lines if PROGRESS_RE.match(x)] == \
        ["1", "2", "3"]


def test_request_stop_checkpoints_the_last_completed_step(shards, tmp_path):
    trainer, lines = make_trainer(shards, str(tmp_path), max_steps=8, ckpt_every=4)
    trainer.add_callback("on_step_end",
                         lambda t, info: t.request_stop() if info["step"] == 5 else None)
    trainer.run()
    assert trainer.stopped and trainer.step == 6
    assert trainer.last_checkpoint == os.path.join(str(tmp_path), "ckpt-6")
    assert open(tmp_path / "latest").read() == "ckpt-6\n"
    # resumed, it ends as an uninterrupted run does
    resumed, _ = make_trainer(shards, str(tmp_path), max_steps=8, ckpt_every=4)
    resumed.load_checkpoint()
    resumed.run()
    full, _ = make_trainer(shards, str(tmp_path / "full"), max_steps=8, ckpt_every=4)
    full.run()
    for (n, p), (_, q) in zip(full.model.named_parameters(), resumed.model.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)


def test_stop_during_an_evaluation_drops_it_and_keeps_a_saved_step(shards, tmp_path):
    trainer, lines = make_trainer(shards, str(tmp_path), max_steps=8, ckpt_every=4)
    evaluate = trainer.evaluate

    def stop_inside():
        if trainer.step == 4:
            trainer.request_stop()
        return evaluate()

    trainer.evaluate = stop_inside
    trainer.run()
    assert trainer.stopped and trainer.step == 4
    records = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records if "val_loss" in r] == [0]  # step 4's eval was dropped
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("ckpt-")) == ["ckpt-4"]


def test_ckpt_every_zero_writes_only_the_last_step(shards, tmp_path):
    trainer, _ = make_trainer(shards, str(tmp_path), max_steps=5, ckpt_every=0)
    trainer.run()
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("ckpt-")) == ["ckpt-5"]


def test_a_metrics_write_error_names_the_file(shards, tmp_path, monkeypatch):
    from cgad.checkpoint import WriteError
    trainer, _ = make_trainer(shards, str(tmp_path), max_steps=2)
    real_open = open

    def full_disk(path, mode="r", *a, **kw):
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(WriteError) as e:
        trainer.run()
    assert e.value.filename == os.path.join(str(tmp_path), "metrics.jsonl")
    assert e.value.strerror == "No space left on device"


@pytest.mark.parametrize("device", ["cpu", "test"])
def test_autocast_dtype_trains_in_bf16_with_float32_master_weights(shards, device):
    losses = {}
    for dtype in (None, cgad.bfloat16):
        trainer, _ = make_trainer(shards, max_steps=8, autocast_dtype=dtype, device=device)
        seen = []
        trainer.add_callback("on_step_end", lambda t, info: seen.append(info["loss"]))
        trainer.run()
        losses[dtype] = seen
        for name, p in trainer.model.named_parameters():
            assert p.dtype == cgad.float32 and p.grad.dtype == cgad.float32 and p.device == device, name
    assert losses[None] != losses[cgad.bfloat16]  # the region really ran the matmuls in bf16
    np.testing.assert_allclose(losses[cgad.bfloat16], losses[None], atol=2e-2)
    with pytest.raises(ValueError, match="autocast_dtype must be None or cgad.bfloat16"):
        make_trainer(shards, autocast_dtype=cgad.float64)
