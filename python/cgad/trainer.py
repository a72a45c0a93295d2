"""The reusable training loop: gradient accumulation, lr schedule, clipping, evaluation, sampling,
checkpoints and metrics, in the order of build-nanogpt's train_gpt2.py.

Step k's loop iteration evaluates first (when k % val_every == 0, and after the last step), then
does one optimizer step. Checkpoint ckpt-<k> holds the state after k optimizer steps, so resuming
from it continues at iteration k and reproduces an uninterrupted run's losses exactly: weights,
optimizer moments, the random generator and the data position are all restored, and evaluation
and sampling leave them untouched (the validation loader restarts for every evaluation and
sampling runs under a saved-and-restored generator state).

A non-finite loss or gradient norm is caught before the optimizer step: on_nan="stop" (the
default) raises NonFiniteError naming the step, leaving the run folder's last good checkpoint as
it is; on_nan="skip" drops that update (no optimizer step), warns naming the step and goes on, unless
Trainer.max_skips_in_a_row updates in a row were non-finite: then the model itself is broken (a
skip leaves the weights as they were, so every later step would fail the same way) and the run
stops with NonFiniteError as under "stop".

request_stop() (train/gpt2.py calls it on SIGINT and SIGTERM) ends the run at the next step
boundary: the step in flight finishes, an evaluation under way is dropped, and a checkpoint of
the last completed step is written (when out_dir is set); run() then returns with `stopped` True
and `last_checkpoint` naming it. Progress goes to the log on lines of their own, never starting
with "step <n> |": one when an evaluation starts, steps done of total with the elapsed time and an
ETA after each evaluation and every `progress_every` seconds; summary() is the closing line.

Data parallel (cgad.distributed initialised, under mpiexec): every rank starts from rank 0's
weights, runs its own micro-batches (its loader reads its stride of the data), and after the last
micro-step's backward the gradients are averaged over the ranks in one all_reduce, so every rank
takes the same optimizer step. Logged and validation losses are averaged over the ranks, tok/sec
counts every rank's tokens, a stop request on any rank stops all of them at the same step, and
rank 0 alone logs and writes the run folder; a checkpoint records the rank count and every
rank's data position.
"""
import datetime
import json
import math
import os
import time

import numpy as np

import cgad
import cgad.distributed as dist
import cgad.nn as nn
from cgad import checkpoint

EVENTS = ("on_step_end", "on_eval", "on_checkpoint")
ON_NAN = ("stop", "skip")


class NonFiniteError(FloatingPointError):
    """A training step produced a NaN or infinite loss or gradient norm (on_nan="stop"), or a
    checkpoint was about to save non-finite values."""


def format_step(info):
    """The log line of one training step, in build-nanogpt's format."""
    return (f"step {info['step']:5d} | loss: {info['loss']:.6f} | lr {info['lr']:.4e} | "
            f"norm: {info['norm']:.4f} | dt: {info['dt_ms']:.2f}ms | "
            f"tok/sec: {info['tok_per_sec']:.2f}")


def format_val(val_loss):
    """The log line of one evaluation."""
    return f"validation loss: {val_loss:.4f}"


def format_duration(seconds):
    """Seconds as h:mm:ss."""
    return str(datetime.timedelta(seconds=int(round(seconds))))


def _rng_to_str(state):
    return np.asarray(state, dtype=np.uint8).tobytes().hex()


def _rng_from_str(text):
    return np.frombuffer(bytes.fromhex(text), dtype=np.uint8).copy()


class Trainer:
    """Trains `model` with `optimizer` on batches from `train_loader` (a DataLoaderLite).

    lr_schedule maps a step to its learning rate (None keeps the optimizer's). grad_clip clips
    the global gradient norm (None or 0: no clipping, the norm is still reported). With
    ckpt_every (it needs out_dir) a checkpoint is written every ckpt_every steps and after the
    last one; ckpt_every=0 writes only the last one. metrics.jsonl (every step) and loss.png go
    to out_dir too. log_every prints every Nth step line (and the last; 0: none).
    sample_fn(trainer) -> str, called every sample_every steps, prints samples during training.
    extra_state is stored in every checkpoint's state.json. on_nan says what a non-finite loss
    or gradient norm does: "stop" or "skip" (see above). autocast_dtype=cgad.bfloat16 runs the
    forward and the loss under cgad.autocast (bf16 matmuls and attention; weights, grads and
    optimizer state stay float32).
    """

    max_skips_in_a_row = 10  # on_nan="skip" gives up after this many non-finite steps in a row

    def __init__(self, model, optimizer, train_loader, val_loader=None, *, max_steps,
                 grad_accum_steps=1, lr_schedule=None, grad_clip=1.0, val_every=50,
                 val_steps=20, ckpt_every=None, out_dir=None, sample_every=None, sample_fn=None,
                 extra_state=None, keep_checkpoints=2, log=None, on_nan="stop", log_every=1,
                 progress_every=60.0, autocast_dtype=None):
        if max_steps < 0 or grad_accum_steps < 1 or log_every < 0:
            raise ValueError(f"Trainer: need max_steps >= 0, grad_accum_steps >= 1 and "
                             f"log_every >= 0, got {max_steps}, {grad_accum_steps} and "
                             f"{log_every}")
        if on_nan not in ON_NAN:
            raise ValueError(f"Trainer: on_nan must be one of {ON_NAN}, got {on_nan!r}")
        if ckpt_every is not None and out_dir is None:
            raise ValueError("Trainer: ckpt_every needs an out_dir to write checkpoints into")
        self.model, self.optimizer = model, optimizer
        self.train_loader, self.val_loader = train_loader, val_loader
        self.max_steps, self.grad_accum_steps = max_steps, grad_accum_steps
        self.lr_schedule, self.grad_clip = lr_schedule, grad_clip
        self.val_every, self.val_steps, self.ckpt_every = val_every, val_steps, ckpt_every
        self.out_dir = out_dir
        self.sample_every, self.sample_fn = sample_every, sample_fn
        self.extra_state = dict(extra_state or {})
        self.keep_checkpoints = keep_checkpoints
        self.on_nan = on_nan
        self.log_every, self.progress_every = log_every, progress_every
        if autocast_dtype is not None and cgad._C.dtype_of(autocast_dtype) != cgad.bfloat16:
            raise ValueError(f"Trainer: autocast_dtype must be None or cgad.bfloat16, got {autocast_dtype!r}")
        self.autocast_dtype = autocast_dtype
        self._skips_in_a_row = 0
        self._stop_requested = False
        self.stopped = False
        self.last_checkpoint = None
        self._saved_step = None  # the step whose state is on disk as a checkpoint
        self.best_val = None  # (val_loss, step), also over the records of a resumed run
        self._t_start = self._t_progress = None
        self._steps_this_session = 0
        self.step = 0
        self.callbacks = {event: [] for event in EVENTS}
        self.params = list(model.parameters())
        self.device = self.params[0].device
        self.last_metrics = {}
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.is_main = self.rank == 0
        self.log = (log or (lambda line: print(line, flush=True))) if self.is_main else (lambda line: None)
        if self.world > 1:
            dist.broadcast_parameters(self.params, src=0)
            self._grad_sync = dist.GradientSync(self.params)
        if out_dir is not None and self.is_main:
            os.makedirs(out_dir, exist_ok=True)

    def add_callback(self, event, fn):
        """Call fn(trainer, info) on `event`: on_step_end, on_eval or on_checkpoint."""
        if event not in self.callbacks:
            raise ValueError(f"unknown trainer event {event!r}; expected one of {EVENTS}")
        self.callbacks[event].append(fn)

    def _emit(self, event, info):
        for fn in self.callbacks[event]:
            fn(self, info)

    def _batch(self, loader):
        x, y = loader.next_batch()
        if self.device != cgad.device("cpu"):  # the loaders make CPU tensors
            x, y = x.to(self.device), y.to(self.device)
        return x, y

    def _autocast(self):
        """The forward's mixed-precision region (disabled without autocast_dtype)."""
        return cgad.autocast(self.device.type, dtype=self.autocast_dtype or cgad.bfloat16,
                             enabled=self.autocast_dtype is not None)

    def _mean_over_ranks(self, value):
        if self.world == 1:
            return value
        t = cgad.tensor([value], dtype=cgad.float64)
        return dist.all_reduce(t, op="avg").item()

    def _record(self, record):
        if self.out_dir is not None and self.is_main:
            # strict JSON: a NaN or inf is written as null
            record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                      for k, v in record.items()}
            path = os.path.join(self.out_dir, "metrics.jsonl")
            try:
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as e:  # disk full, permission denied: say which file
                raise checkpoint.WriteError(e.errno, e.strerror, path) from None

    def request_stop(self):
        """End run() at the next step boundary, with a checkpoint of the last completed step
        (see the module docstring); safe to call from a signal handler."""
        self._stop_requested = True

    def evaluate(self):
        """Mean loss over val_steps batches from the start of the validation set; None when a
        stop was requested before it finished."""
        self.model.eval()
        self.val_loader.reset()
        total = 0.0
        try:
            with cgad.no_grad():
                for _ in range(self.val_steps):
                    if self._stop_requested and self.world == 1:  # ranks stop only where they agree
                        return None
                    x, y = self._batch(self.val_loader)
                    with self._autocast():
                        _, loss = self.model(x, y)
                    total += loss.item()
        finally:
            self.model.train()
        return self._mean_over_ranks(total / self.val_steps)

    def train_step(self):
        """One optimizer step over grad_accum_steps micro-batches; returns its metrics. When the
        loss or the gradient norm is not finite it makes no update and the metrics say
        "skipped": True."""
        t0 = time.perf_counter()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_accum = 0.0
        for _ in range(self.grad_accum_steps):
            x, y = self._batch(self.train_loader)
            with self._autocast():  # the forward and the loss; backward and the step stay outside
                _, loss = self.model(x, y)
            # the gradients of a sum of micro-batch means: divide so they add up to one mean
            loss = loss / self.grad_accum_steps
            loss_accum += loss.item()
            loss.backward()
        if self.world > 1:  # one all_reduce per optimizer step, none on the other micro-steps
            self._grad_sync()
            loss_accum = self._mean_over_ranks(loss_accum)
        norm = float(nn.utils.clip_grad_norm_(self.params, self.grad_clip or math.inf))
        if self.lr_schedule is not None:
            self.optimizer.set_alpha(self.lr_schedule(self.step))
        lr = self.optimizer.get_alpha()
        finite = math.isfinite(loss_accum) and math.isfinite(norm)
        if finite:
            self.optimizer.step()
        if self.device.type == "cuda":
            cgad.cuda.synchronize()
        dt = time.perf_counter() - t0
        tokens = self.train_loader.B * self.train_loader.T * self.grad_accum_steps * self.world
        info = {"step": self.step, "loss": loss_accum, "lr": lr, "norm": norm,
                "dt_ms": dt * 1000.0, "tok_per_sec": tokens / dt}
        if not finite:
            info["skipped"] = True
        return info

    def _sample(self):
        rng = cgad.get_rng_state()  # sampling must not shift the training run's random stream
        try:
            self.model.eval()
            text = self.sample_fn(self)
        finally:
            self.model.train()
            cgad.set_rng_state(rng)
        self.log(text)

    def save_checkpoint(self):
        """Write out_dir/ckpt-<step> (the state after `step` optimizer steps); returns its path.
        Raises NonFiniteError, writing nothing, when a parameter holds a NaN or inf."""
        for name, p in self.model.named_parameters():
            if not np.all(np.isfinite(p.numpy())):
                raise NonFiniteError(f"step {self.step}: parameter {name} is not finite; not "
                                     f"writing a checkpoint of it")
        state = dict(self.extra_state, rng=_rng_to_str(cgad.get_rng_state()),
                     train_loader=self.train_loader.state_dict(),
                     threads=cgad.get_num_threads())
        if self.world > 1:
            state["ranks"] = self.world
            state["train_loaders"] = dist.all_gather_json(self.train_loader.state_dict())
        if self.is_main:
            path = checkpoint.save_checkpoint(self.out_dir, self.step, self.model, self.optimizer,
                                              state, keep=self.keep_checkpoints)
        if self.world > 1:  # the others go on once rank 0's checkpoint is complete
            path = dist.all_gather_json(path if self.is_main else None)[0]
        self._saved_step, self.last_checkpoint = self.step, path
        self._emit("on_checkpoint", {"step": self.step, "path": path})
        return path

    def load_checkpoint(self, path=None):
        """Continue from a checkpoint (default: out_dir's latest); returns its state.json."""
        state = checkpoint.load_checkpoint(path or self.out_dir, self.model, self.optimizer)
        ranks = int(state.get("ranks", 1))
        if ranks != self.world:
            raise ValueError(f"{checkpoint.resolve_checkpoint(path or self.out_dir)} was written by a run on "
                             f"{ranks} rank(s); this run has {self.world}: resume with the same rank count")
        cgad.set_rng_state(_rng_from_str(state["rng"]))
        self.train_loader.load_state_dict(state["train_loaders"][self.rank] if ranks > 1 else state["train_loader"])
        self.step = int(state["step"])
        self._saved_step = self.step
        self.last_checkpoint = checkpoint.resolve_checkpoint(path or self.out_dir)
        if state.get("threads") not in (None, cgad.get_num_threads()):
            self.log(f"warning: checkpoint was written with {state['threads']} threads, now "
                     f"{cgad.get_num_threads()}; losses will differ in the last bits")
        self._truncate_metrics()
        return state

    def _truncate_metrics(self):
        """Drop records a killed run logged past the checkpoint; the resumed run redoes them."""
        if self.out_dir is None or not self.is_main:
            return
        path = os.path.join(self.out_dir, "metrics.jsonl")
        if not os.path.isfile(path):
            return
        kept = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    if record["step"] < self.step:
                        kept.append(line if line.endswith("\n") else line + "\n")
                        self._note_val(record.get("val_loss"), record["step"])
                except (ValueError, KeyError, TypeError):
                    pass  # a blank line, or one cut short by a kill
        try:
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.writelines(kept)
            os.replace(path + ".tmp", path)  # a kill right now must not lose earlier records
        except OSError as e:
            raise checkpoint.WriteError(e.errno, e.strerror, path) from None

    def _note_val(self, val_loss, step):
        if isinstance(val_loss, float) and math.isfinite(val_loss) and \
                (self.best_val is None or val_loss < self.best_val[0]):
            self.best_val = (val_loss, step)

    def _non_finite(self, info):
        what = f"step {info['step']}: non-finite loss {info['loss']} or gradient norm {info['norm']}"
        if self.on_nan == "skip":
            self._skips_in_a_row += 1
            if self._skips_in_a_row < self.max_skips_in_a_row:
                self.log(f"warning: {what}; skipped this update (on_nan=skip)")
                return
            why = (f"{self._skips_in_a_row} steps in a row were non-finite, so skipping cannot "
                   f"recover (on_nan=skip)")
        else:
            why = "stopped before the optimizer step (on_nan=stop)"
        latest = checkpoint.latest_checkpoint(self.out_dir) if self.out_dir else None
        kept = f"; the last good checkpoint is {latest}" if latest else ""
        raise NonFiniteError(f"{what}; {why}{kept}")

    def _progress(self):
        """Steps done of total, the elapsed time of this run() and an ETA from its pace."""
        self._t_progress = time.perf_counter()
        elapsed = self._t_progress - self._t_start
        left = self.max_steps - self.step
        eta = format_duration(elapsed / self._steps_this_session * left) \
            if self._steps_this_session else "unknown"
        pct = 100.0 * self.step / self.max_steps if self.max_steps else 100.0
        self.log(f"progress: {self.step}/{self.max_steps} steps ({pct:.0f}%) | elapsed "
                 f"{format_duration(elapsed)} | eta {eta if left else '0:00:00'}")

    def _stop(self):
        """Checkpoint the last completed step, unless it is on disk already, and mark the run
        stopped."""
        if self.out_dir is not None and self._saved_step != self.step:
            self.save_checkpoint()
        self.stopped = True

    def _eval_due(self, done):
        return self.val_loader is not None and self.val_steps > 0 and \
            (done or (self.val_every and self.step % self.val_every == 0))

    def _log_step(self, info):
        every = self.log_every
        if info.get("skipped") or (every and (info["step"] % every == 0 or
                                              info["step"] == self.max_steps - 1)):
            self.log(format_step(info))

    def run(self):
        """Train until max_steps (from step 0 or a loaded checkpoint), or until request_stop();
        returns the last metrics."""
        self._t_start = self._t_progress = time.perf_counter()
        self._steps_this_session = 0
        while True:
            if self.world > 1:  # a signal on any rank stops every rank after the same step
                self._stop_requested = dist.any_rank(self._stop_requested)
            if self._stop_requested:
                self._stop()
                break
            done = self.step >= self.max_steps
            if self._eval_due(done):
                self.log(f"evaluating at step {self.step} ({self.val_steps} batches)")
                val_loss = self.evaluate()
                if val_loss is None:
                    continue  # stopped mid-way
                self.log(format_val(val_loss))
                self._record({"step": self.step, "val_loss": val_loss})
                self.last_metrics["val_loss"] = val_loss
                self._note_val(val_loss, self.step)
                self._emit("on_eval", {"step": self.step, "val_loss": val_loss})
                self._progress()
            if self.sample_fn is not None and self.sample_every and self.step > 0 and \
                    (done or self.step % self.sample_every == 0):
                self._sample()
            if done:
                break
            if self._stop_requested:
                continue
            info = self.train_step()
            self._log_step(info)
            self._record(info)
            if info.get("skipped"):
                self._non_finite(info)
            else:
                self._skips_in_a_row = 0
                self.last_metrics.update(info)
            self._emit("on_step_end", info)
            self.step += 1
            self._steps_this_session += 1
            if self.ckpt_every is not None and (self.step == self.max_steps or (
                    self.ckpt_every and self.step % self.ckpt_every == 0)):
                self.save_checkpoint()
            if time.perf_counter() - self._t_progress >= self.progress_every:
                self._progress()
        if self.out_dir is not None and self.is_main:
            plot_losses(self.out_dir)
        return dict(self.last_metrics)

    def summary(self):
        """The closing line: steps, this run's wall time, final and best validation loss, the
        latest checkpoint."""
        elapsed = time.perf_counter() - self._t_start if self._t_start is not None else 0.0
        parts = [f"done: {self.step}/{self.max_steps} steps in {format_duration(elapsed)}"]
        if "val_loss" in self.last_metrics:
            parts.append(f"final validation loss: {self.last_metrics['val_loss']:.4f}")
        if self.best_val is not None:
            parts.append(f"best: {self.best_val[0]:.4f} at step {self.best_val[1]}")
        if self.last_checkpoint is not None:
            parts.append(f"checkpoint: {self.last_checkpoint}")
        return " | ".join(parts)


def plot_losses(out_dir):
    """Draw out_dir/loss.png from metrics.jsonl when matplotlib is installed; returns the path
    or None."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = os.path.join(out_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    train = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    for points, label in ((train, "train"), (val, "validation")):
        if points:
            ax.plot(*zip(*points), label=label, marker="o" if label == "validation" else None)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    out = os.path.join(out_dir, "loss.png")
    try:
        fig.savefig(out, dpi=100)
    except OSError as e:
        raise checkpoint.WriteError(e.errno, e.strerror, out) from None
    finally:
        plt.close(fig)
    return out
