"""Train GPT-2 on cgad: `python train/gpt2.py` trains a tiny char-level model on the embedded
Tiny Shakespeare, offline, in a few minutes on a CPU; flags scale it up to real data and GPT-2
sizes. A thin command line over cgad.trainer.Trainer.

The run folder (--out) is locked while a run uses it; a folder that holds a run is continued
only with --resume and replaced only with --overwrite, after every check has passed. Ctrl-C or
SIGTERM finish the step in flight, write a checkpoint and print the command that resumes it.

Under `mpiexec -n N` it trains data parallel (cgad.distributed): rank 0 alone takes the lock,
checks the folder and writes to it; the other ranks run the same checks read-only and wait for
rank 0's verdict, so an error there ends every rank with it. --total-batch-size is global.
"""
import argparse
import os
import shlex
import signal
import sys
import tempfile

import cgad
import cgad.distributed as dist
from cgad import checkpoint, run_data
from cgad.checks import run_checks
from cgad.cli import (ArgumentParser, Interrupted, StopSignals, UsageError, error_line,
                      resolve_device, run_main, tokenizer_from_record, tokenizer_record)
from cgad.data import DataLoaderLite, split_shard_files
from cgad.lr import warmup_cosine
from cgad.models.gpt import GPT, GPTConfig
from cgad.run_flags import NOT_SAVED, check_flags, merge_saved_args, resolve_defaults
from cgad.run_folder import (DATA_DIR, NO_CHECKPOINT, RunInUse, RunLock, check_writable,
                             clear_run, describe_run, read_run_config, write_run_config)
from cgad.sampling import DEFAULTS as SAMPLE_DEFAULTS
from cgad.sampling import generate_options, stream_samples, write_now
from cgad.trainer import NonFiniteError, Trainer


def build_parser():
    """The command line; every default is None here and resolved in resolve_defaults(), so that
    --resume can tell given flags from the saved run's."""
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--data", help="training data: a text file (tokenized and split 90/10 into the run "
                     "folder), a folder of .bin shards, a shard glob or one .bin file (shards "
                     "with 'val' in the name are validation). Default: the embedded Tiny "
                     "Shakespeare, char-level")
    a("--tokenizer", choices=("auto", "gpt2", "char"),
      help="for text data: gpt2 BPE, char-level, or auto (gpt2 when its vocab files are found, "
           "else char, saying so). Default: auto; char for the embedded text, gpt2 with "
           "--init-from")
    a("--vocab-dir", help="folder with GPT-2's encoder.json and vocab.bpe (also read from "
                          "$CGAD_VOCAB_DIR or tiktoken's cache)")
    a("--model", choices=tuple(GPTConfig.PRESETS), help="model size preset. Default: tiny")
    a("--init-from", help="start from GPT-2 weights instead of a random init (fine-tuning): a "
                          "Hugging Face folder (config.json + model.safetensors) or a "
                          ".safetensors file; they set the model size. Default lr: 3e-5")
    a("-B", "--batch-size", type=int, dest="B", help="sequences per micro-batch "
                                                     "(default per preset, 16 for tiny)")
    a("-T", "--seq-len", type=int, dest="T", help="tokens per sequence (default: the "
                                                  "preset's block size)")
    a("--total-batch-size", type=int, help="tokens per optimizer step; a multiple of B*T, the "
                                           "rest is gradient accumulation. Default: B*T")
    a("--max-steps", type=int, help="optimizer steps to train for; 0 evaluates (and samples) "
                                    "only (default 2500)")
    a("--lr", type=float, help="peak learning rate (default 1e-3 for tiny/mini, 6e-4 for the "
                               "GPT-2 sizes, 3e-5 with --init-from)")
    a("--min-lr", type=float, help="final learning rate of the cosine decay (default lr/10)")
    a("--warmup-steps", type=int, help="linear warmup steps before the cosine decay (default "
                                       "10%% of --max-steps, at most 100)")
    a("--weight-decay", type=float, help="AdamW weight decay of 2-D weights (default 0.1)")
    a("--grad-clip", type=float, help="clip the global gradient norm to this; 0 disables "
                                      "(default 1.0)")
    a("--val-every", type=int, help="evaluate every N steps, and at the start and end; 0: only "
                                    "at the end (default 50)")
    a("--val-steps", type=int, help="batches per evaluation; 0: no evaluation (default 20)")
    a("--ckpt-every", type=int, help="checkpoint every N steps and after the last one; 0: only "
                                     "after the last one (default: --val-every, 50 when that "
                                     "is 0)")
    a("--log-every", type=int, help="print every Nth step line (and the last); metrics.jsonl "
                                    "keeps every step; 0: none (default 1)")
    a("--sample-every", type=int, help="print a sample every N steps; 0: only at the end "
                                       "(default 0)")
    a("--prompt", help="text to start samples from (default: a newline, or end-of-text for "
                       "GPT-2 BPE)")
    a("--num-samples", type=int, help="samples to print each time; 0: none (default "
                                      f"{SAMPLE_DEFAULTS['num_samples']})")
    a("--max-new-tokens", type=int, help="tokens per sample (default "
                                         f"{SAMPLE_DEFAULTS['max_new_tokens']})")
    a("--temperature", type=float, help="sampling temperature; 0: greedy (default "
                                        f"{SAMPLE_DEFAULTS['temperature']})")
    a("--top-k", type=int, help="sample among the k likeliest tokens; 0: all (default "
                                f"{SAMPLE_DEFAULTS['top_k']})")
    a("--out", help="run folder: metrics.jsonl, loss.png, config.json, checkpoints "
                    "(default out)")
    a("--resume", action="store_true", help="continue the run found in --out from its latest "
                                            "checkpoint; flags not given are the run's own")
    a("--overwrite", action="store_true", help="replace the run found in --out (deleted only "
                                               "once every other check has passed)")
    a("--dtype", choices=("float32", "bfloat16"),
      help="float32 (exact), or bfloat16: the forward and loss under cgad.autocast (bf16 "
           "matmuls and attention; weights, grads and optimizer state stay float32). Default "
           "float32; on --resume, the run's")
    a("--tf32", action="store_true", default=None,
      help="on CUDA: float32 matmuls on TF32 tensor cores (faster, about 1e-3 relative error; "
           "cgad.backends.cuda.matmul.allow_tf32). Default off; on --resume, the run's")
    a("--on-nan", choices=("stop", "skip"),
      help="a NaN or infinite loss or gradient norm: stop the run naming the step, keeping the "
           "last good checkpoint, or skip that update with a warning and go on, stopping after "
           f"{Trainer.max_skips_in_a_row} such steps in a row (default stop)")
    a("--seed", type=int, help="random seed for init, data-independent randomness and "
                               "sampling (default 1337)")
    a("--device", help="cpu, cuda, cuda:N, test, or auto: cuda when available, else cpu "
                       "(default auto)")
    a("--threads", type=int, help="CPU threads (default: cgad's; on --resume, the run's)")
    a("--check", action="store_true", help="run the debugging kit on this configuration "
                                           "instead of training (the run folder is not "
                                           "touched): shifted targets, gradients reach every "
                                           "parameter finite and nonzero, every parameter "
                                           "moves in one step, one batch overfits")
    return p


def out_from_argv(argv):
    """--out alone, for a command line that does not parse: its lock is still checked first."""
    p = ArgumentParser(add_help=False)
    p.add_argument("--out", default=None)
    try:
        return p.parse_known_args(argv)[0].out or "out"
    except UsageError:
        return None


class Run:
    """One invocation of the training command, from the lock to the closing summary."""

    def __init__(self, args, given, log, signals):
        self.args, self.given, self.log, self.signals = args, given, log, signals
        self.out = args.out or "out"
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)

    def prepare(self, tmp_dir):
        """Every check, with nothing in the run folder created, moved or deleted."""
        args, log = self.args, self.log
        self.saved = None
        self.replacing = None
        if args.resume and args.overwrite:
            raise UsageError("--resume continues the run in --out and --overwrite replaces it: "
                             "give one of them")
        for key in ("data", "init_from"):  # saved absolute: resumable from any folder
            if getattr(args, key) is not None:
                setattr(args, key, os.path.abspath(getattr(args, key)))
        if args.resume:
            self.saved = read_run_config(self.out)
            self.resume_from = checkpoint.resolve_checkpoint(self.out)
            checkpoint.read_state(self.resume_from)
            merge_saved_args(args, self.given, self.saved["args"], log)
        else:
            held = describe_run(self.out)
            if held and not args.overwrite:
                resume = "" if held == NO_CHECKPOINT else "continue it with --resume, "
                raise UsageError(f"{self.out} holds {held}: {resume}start over with --overwrite "
                                 f"(deletes it), or give another --out")
            self.replacing = held
        pretrained = None
        if self.saved is not None:
            model_config = GPTConfig(**self.saved["model"])
        elif args.init_from:
            if args.model is not None:
                raise UsageError("--init-from takes the model size from the weights: drop "
                                 "--model")
            pretrained = GPT.from_pretrained(args.init_from)
            model_config = pretrained.config
        else:
            model_config = GPTConfig.preset(args.model or "tiny")
        resolve_defaults(args, model_config, self.world)  # --total-batch-size is global
        check_flags(args, model_config, self.world)
        self.device = resolve_device(args.device)
        cgad.backends.cuda.matmul.allow_tf32 = args.tf32
        if args.threads:
            cgad.set_num_threads(args.threads)
        elif self.saved is not None:  # reductions differ across thread counts
            threads = checkpoint.read_state(self.resume_from).get("threads")
            if threads:
                cgad.set_num_threads(threads)
        elif self.world > 1:  # the machine's cores shared by the ranks on it
            cgad.set_num_threads(max(1, (os.cpu_count() or 1) // local_ranks()))
        if self.rank == 0:
            check_writable(self.out)

        self.tmp_shards = None
        if self.saved is not None:
            self.train_files, self.val_files, self.tokenizer = self._saved_data()
        elif run_data.is_text(args.data):
            self.train_files, self.val_files, self.tokenizer = run_data.tokenize_text(
                args.data, text_tokenizer_name(args), args.vocab_dir, tmp_dir, log)
            self.tmp_shards = tmp_dir
        else:
            self.train_files, self.val_files, self.tokenizer = run_data.shard_files(
                args.data, args.vocab_dir, log)
            if args.overwrite and _inside(self.train_files + self.val_files, self.out):
                raise UsageError(f"--data {args.data} is inside {self.out}, which --overwrite "
                                 f"would delete")
        if self.saved is None:
            args.tokenizer = self.tokenizer.name if self.tokenizer is not None else None
        text = self._saved_text() if self.saved is not None else run_data.is_text(args.data)
        label = (lambda p: f"the {'validation' if '_val_' in p else 'training'} part of "
                           f"{args.data or 'the embedded text'}") if text else str
        run_data.check_batch_fits(self.train_files + self.val_files, args.B, args.T, label)
        self.text = text

        vocab = self.tokenizer.vocab_size if self.tokenizer is not None else 50257
        if self.saved is None and pretrained is None:
            model_config = GPTConfig.preset(args.model, vocab_size=vocab)
        if vocab > model_config.vocab_size:
            raise UsageError(f"the tokenizer has {vocab} ids but the model only "
                             f"{model_config.vocab_size}")
        cgad.manual_seed(args.seed)
        self.model = (pretrained if pretrained is not None else GPT(model_config)).to(self.device)
        self.model_config = model_config

    def _saved_data(self):
        """The resumed run's own data: its tokenized text in <out>/data, or the shards it was
        given; its tokenizer from config.json."""
        args, saved = self.args, self.saved
        record = saved.get("tokenizer")
        tokenizer = tokenizer_from_record(record, args.vocab_dir) if record else None
        source = os.path.join(self.out, DATA_DIR) if self._saved_text() else args.data
        train, val = split_shard_files(source)
        self.log(f"data: {len(train)} train and {len(val)} val shard(s) of the run ({source})")
        return train, val, tokenizer

    def _saved_text(self):
        """Whether the resumed run was given text (tokenized into <out>/data) or shards."""
        return self.saved.get("data", {}).get("text", run_data.is_text(self.args.data))

    def commit(self):
        """The checks passed: replace an old run (--overwrite), move tokenized text in, and
        build the trainer; on --resume, load the checkpoint first, then record the flags."""
        args, log, out = self.args, self.log, self.out
        self.signals.defer(lambda: None)  # from here a signal waits for a step boundary
        if self.world > 1:  # every rank has checked; rank 0 changes the folder, the others wait
            dist.barrier()
            if self.rank == 0:
                self._change_folder()
            dist.barrier()
            if self.rank > 0 and self.tmp_shards is not None:  # rank 0 installed them there
                folder = os.path.join(out, DATA_DIR)
                self.train_files = [os.path.join(folder, os.path.basename(f)) for f in self.train_files]
                self.val_files = [os.path.join(folder, os.path.basename(f)) for f in self.val_files]
        else:
            self._change_folder()
        self._build()

    def _change_folder(self):
        """Replace an old run (--overwrite) and move tokenized text in."""
        args, log, out = self.args, self.log, self.out
        if self.replacing:
            clear_run(out)
            log(f"--overwrite: removed {self.replacing} from {out}")
        if self.tmp_shards is not None:
            self.train_files, self.val_files = run_data.install_shards(
                self.tmp_shards, os.path.join(out, DATA_DIR), self.train_files, self.val_files)

    def _build(self):
        """The loaders, optimizer and trainer; on --resume, load the checkpoint first, then
        record the flags."""
        args, log, out = self.args, self.log, self.out
        vocab = self.model_config.vocab_size
        stride = dict(process_rank=self.rank, num_processes=self.world, vocab_size=vocab)
        train_loader = DataLoaderLite(args.B, args.T, self.train_files, **stride)
        val_loader = DataLoaderLite(args.B, args.T, self.val_files, **stride) if self.val_files else None
        optimizer = self.model.configure_optimizers(args.weight_decay, args.lr)
        record = tokenizer_record(self.tokenizer) if self.tokenizer is not None else None
        grad_accum = args.total_batch_size // (args.B * args.T * self.world)
        log(f"model: {args.model or 'from ' + args.init_from} "
            f"({self.model.num_parameters() / 1e6:.2f}M parameters, {self.model_config.n_layer}"
            f" layers, {self.model_config.n_head} heads, {self.model_config.n_embd} wide), "
            f"device {self.device}, {cgad.get_num_threads()} thread(s), {args.dtype}"
            f"{', tf32 matmuls' if args.tf32 else ''}")
        ranks = f" x {self.world} ranks" if self.world > 1 else ""
        log(f"batch: {args.total_batch_size} tokens per step = B {args.B} x T {args.T}{ranks} x "
            f"{grad_accum} accumulation step(s); {args.max_steps} steps")
        schedule = warmup_cosine(args.lr, args.min_lr, args.warmup_steps, args.max_steps) \
            if args.max_steps > 0 else None
        self.trainer = Trainer(
            self.model, optimizer, train_loader, val_loader, max_steps=args.max_steps,
            grad_accum_steps=grad_accum, lr_schedule=schedule, grad_clip=args.grad_clip,
            val_every=args.val_every, val_steps=args.val_steps, ckpt_every=args.ckpt_every,
            out_dir=out, sample_every=args.sample_every or None,
            sample_fn=self.sample if self.tokenizer is not None and self.rank == 0 else None,
            extra_state={"model_config": self.model_config.to_dict(), "tokenizer": record},
            log=log, on_nan=args.on_nan, log_every=args.log_every,
            autocast_dtype=cgad.bfloat16 if args.dtype == "bfloat16" else None)
        config = {"args": {k: v for k, v in vars(args).items() if k not in NOT_SAVED},
                  "model": self.model_config.to_dict(), "tokenizer": record,
                  "data": {"text": self.text}}
        if self.saved is not None:
            self.trainer.load_checkpoint(out)
            log(f"resumed {out} at step {self.trainer.step}")
            if args.max_steps <= self.trainer.step:
                log(f"nothing to train: the run is at step {self.trainer.step}; evaluating "
                    f"and sampling only ({os.path.join(out, 'config.json')} is kept)")
                return
        if self.rank == 0:
            write_run_config(out, config)

    def sample(self, trainer):
        """Samples from the model as it is at trainer.step, with the run's sampling flags: the
        first printed as it is generated (rank 0 only: the others have no sample_fn); returns
        the summary line (tokens, seconds, tok/s) for the log."""
        args = self.args
        cgad.manual_seed(args.seed + trainer.step)
        temperature, top_k = generate_options(args.temperature, args.top_k)
        _, summary = stream_samples(self.model, self.tokenizer, write_now, args.prompt,
                                    args.num_samples, args.max_new_tokens,
                                    temperature=temperature, top_k=top_k, device=self.device,
                                    heading=f"--- sample {{i}} at step {trainer.step}:")
        return summary

    def train(self):
        """Train (a signal stops it at a step boundary, with a checkpoint), then the closing
        sample and summary; returns the exit status."""
        trainer, args = self.trainer, self.args
        self.signals.defer(trainer.request_stop)
        trainer.run()
        if trainer.stopped:
            name = signal.Signals(self.signals.signum).name
            launcher = f"mpiexec -n {self.world} " if self.world > 1 else ""
            self.log(f"stopped by {name} with {trainer.step} of {args.max_steps} steps done: "
                     f"checkpoint {trainer.last_checkpoint}; resume with: "
                     f"{launcher}{script_command(__file__)} --resume --out {shlex.quote(self.out)}")
            return 128 + self.signals.signum
        try:
            self.signals.raise_now()
            if self.tokenizer is not None and args.num_samples and args.max_new_tokens and self.rank == 0:
                self.log(self.sample(trainer))
        except Interrupted as e:
            self.log(f"interrupted ({signal.Signals(e.signum).name}) during the closing sample; "
                     f"the run is complete: checkpoint {trainer.last_checkpoint}")
            return 128 + e.signum
        self.log(trainer.summary())
        return 0


def text_tokenizer_name(args):
    """--tokenizer for text data: GPT-2 BPE with --init-from, char-level for the embedded text
    (whatever tiktoken has cached), else as given (default auto)."""
    name = args.tokenizer or ("gpt2" if args.init_from else "auto")
    return "char" if args.data is None and name == "auto" else name


def script_command(path):
    """`python <path>` with the path as the user would type it from here."""
    rel = os.path.relpath(path)
    return f"python {shlex.quote(path if rel.startswith('..') else rel)}"


def _inside(files, folder):
    root = os.path.realpath(folder) + os.sep
    return any(os.path.realpath(f).startswith(root) for f in files)


def check_only(args, log):
    """--check: the debugging kit on this configuration; the run folder is not touched."""
    pretrained = GPT.from_pretrained(args.init_from) if args.init_from else None
    model_config = pretrained.config if pretrained is not None else \
        GPTConfig.preset(args.model or "tiny")
    resolve_defaults(args, model_config)
    check_flags(args, model_config)
    device = resolve_device(args.device)
    cgad.backends.cuda.matmul.allow_tf32 = args.tf32
    if args.threads:
        cgad.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="cgad-check-") as tmp:
        if run_data.is_text(args.data):
            train, _, tokenizer = run_data.tokenize_text(
                args.data, text_tokenizer_name(args), args.vocab_dir, tmp, log)
        else:
            train, _, tokenizer = run_data.shard_files(args.data, args.vocab_dir, log)
        run_data.check_batch_fits(train, args.B, args.T, str)
        vocab = tokenizer.vocab_size if tokenizer is not None else 50257
        cgad.manual_seed(args.seed)
        model = pretrained if pretrained is not None else \
            GPT(GPTConfig.preset(args.model, vocab_size=vocab))
        model.to(device)
        vocab = model.config.vocab_size
        optimizer = model.configure_optimizers(args.weight_decay, args.lr)
        loader = DataLoaderLite(args.B, args.T, train, vocab_size=vocab)
        return 0 if run_checks(model, optimizer, loader, log=log) else 1


def local_ranks():
    """How many ranks of this job share this machine (MPICH's and Open MPI's launchers say)."""
    for var in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE"):
        if os.environ.get(var, "").isdigit():
            return max(1, int(os.environ[var]))
    return 1


class RankFailed(Exception):
    """Rank 0 stopped before training; it printed why."""


def main(argv=None):
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    log = (lambda line: print(line, flush=True)) if rank == 0 else (lambda line: None)  # noqa: E731
    with StopSignals() as signals:
        try:
            args, usage_error = build_parser().parse_args(argv), None
        except UsageError as e:
            args, usage_error = None, e
        if args is not None and args.check:
            if world > 1:
                raise UsageError("--check runs on one process: start it without mpiexec")
            return check_only(args, log)
        given = {k for k, v in vars(args).items() if v not in (None, False)} if args else set()
        out = args.out if args and args.out else out_from_argv(argv)
        if rank > 0:
            return follow(args, given, log, signals)
        if out is None:
            verdict(world, usage_error)
            raise usage_error
        lock = RunLock(out)
        try:
            try:
                lock.acquire(log)  # first: a folder in use is the error, whatever else is wrong
                if usage_error is not None:
                    raise usage_error
                run = Run(args, given, log, signals)
            except BaseException as e:
                verdict(world, e)
                raise
            with tempfile.TemporaryDirectory(prefix="cgad-data-") as tmp:
                try:
                    run.prepare(tmp)
                except Interrupted as e:
                    verdict(world, e)
                    log(f"interrupted ({signal.Signals(e.signum).name}) during the checks; "
                        f"nothing in {out} was changed")
                    return 128 + e.signum
                except BaseException as e:
                    verdict(world, e)
                    raise
                verdict(world, None)
                run.commit()
            return run.train()
        finally:
            lock.release(remove_folder=True)


def verdict(world, error):
    """Rank 0 tells the other ranks whether its checks passed (they wait for it, however long
    tokenizing the data takes); after a failed check every rank just exits."""
    if world > 1:
        dist.all_gather_json(None if error is None else error_line(error), timeout=None)
        if error is not None and not isinstance(error, Interrupted):
            raise RankFailed() from error


def follow(args, given, log, signals):
    """A rank other than 0: wait for rank 0's checks, run the same ones without touching the
    run folder, then train alongside it."""
    if dist.all_gather_json(None, timeout=None)[0] is not None:
        raise RankFailed()
    run = Run(args, given, log, signals)
    with tempfile.TemporaryDirectory(prefix="cgad-data-") as tmp:
        run.prepare(tmp)
        run.commit()
    return run.train()


def run_ranks():
    """run_main for every rank: under mpiexec an error after the checks, on any rank, is printed
    with its rank and ends the whole job (MPI abort) instead of leaving the others waiting."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        run_main(main, user_errors=(NonFiniteError, RunInUse))
    rank = dist.get_rank()
    try:
        status = main()
    except RankFailed as e:  # rank 0's checks failed; it says why
        if rank == 0 and e.__cause__ is not None:
            print(f"error: {error_line(e.__cause__)}", file=sys.stderr, flush=True)
        status = 1
    except (UsageError, OSError, ValueError, MemoryError, NonFiniteError, RunInUse, RuntimeError) as e:
        print(f"error: {'' if rank == 0 else f'rank {rank}: '}{error_line(e)}", file=sys.stderr, flush=True)
        dist.abort(1)
    except Interrupted as e:
        print(f"interrupted ({e})", file=sys.stderr, flush=True)
        status = 128 + e.signum
    sys.exit(status)


if __name__ == "__main__":
    # a wrong flag or path, a damaged checkpoint, shard or config (the messages name the file),
    # a full disk, a folder in use, or a run stopped by a NaN loss: a user's problem to fix,
    # not a crash
    run_ranks()
