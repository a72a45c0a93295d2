"""Run-folder checkpoints: `ckpt-<step>/` with model.safetensors, optim.safetensors, state.json.

A checkpoint is written into a temporary folder, every file fsynced, the folder renamed into place,
and only then is `latest` (a one-line file naming the newest checkpoint) replaced with os.replace;
older checkpoints are pruned last. A kill at any moment therefore leaves `latest` naming a
complete checkpoint. state.json records each file's size and sha256 and a sha256 of its own
content, and `latest` ends in a newline, so a damaged or truncated file is caught at load time with
a ValueError naming it. A write that fails (disk full, permission denied) raises WriteError
naming the file and leaves no temporary folder behind. Tensors go through safetensors.numpy: no
pickle.
"""
import errno
import hashlib
import json
import os
import re
import shutil

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optim.safetensors"
STATE_FILE = "state.json"
LATEST_FILE = "latest"
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")
STATE_HASH_KEY = "state_sha256"


def _fsync_path(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _state_digest(state):
    """sha256 of state.json's content without its own digest, in a canonical JSON form."""
    body = {k: v for k, v in state.items() if k != STATE_HASH_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _checkpoint_steps(run_dir):
    """{step: folder path} of the complete-looking ckpt-<step> folders in run_dir."""
    found = {}
    if os.path.isdir(run_dir):
        for name in os.listdir(run_dir):
            m = _CKPT_RE.match(name)
            if m and os.path.isdir(os.path.join(run_dir, name)):
                found[int(m.group(1))] = os.path.join(run_dir, name)
    return found


class WriteError(OSError):
    """Writing a run-folder file failed (disk full, permission denied, read-only, ...); its
    filename is the file that could not be written."""


def _write_error(error, path):
    """`error` (an OSError, or safetensors' own error wrapping one) as a WriteError naming path."""
    if isinstance(error, OSError):
        return WriteError(error.errno, error.strerror or str(error), path)
    m = re.search(r"os error (\d+)", str(error))  # safetensors reports "... (os error 28)"
    code = int(m.group(1)) if m else errno.EIO
    return WriteError(code, os.strerror(code) if m else str(error), path)


def write_json(path, data):
    """Replace the JSON file `path` whole: a temporary file, fsynced, then os.replace, so that a
    kill mid-write never leaves a half-written file. Raises WriteError naming the file."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise _write_error(e, path) from None


def _remove(path):
    """Remove a file or folder left by a failed write; a read-only folder may keep it."""
    try:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
    except OSError:
        pass


def write_checkpoint(run_dir, step, model_tensors, optim_tensors, state, keep=2):
    """Write ckpt-<step> into run_dir atomically, point `latest` at it, prune all but the newest
    `keep` checkpoints; returns the checkpoint folder. Tensors are dicts of numpy arrays; state
    is a JSON-serializable dict (its "step" and "files" entries are filled in here).

    A failed write (disk full, permission denied) raises WriteError naming the file; the
    temporary folder is removed and `latest` still names the last complete checkpoint."""
    name = f"ckpt-{step}"
    final = os.path.join(run_dir, name)
    tmp = os.path.join(run_dir, f".tmp-{name}-{os.getpid()}")
    old = os.path.join(run_dir, f".tmp-old-{name}-{os.getpid()}")
    current = run_dir  # the file being written, for the error message
    moved_old = False
    try:
        os.makedirs(run_dir, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        current = tmp
        os.makedirs(tmp)
        files = {}
        for fname, tensors in ((MODEL_FILE, model_tensors), (OPTIM_FILE, optim_tensors)):
            current = os.path.join(tmp, fname)
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, current)
            _fsync_path(current)
            files[fname] = {"bytes": os.path.getsize(current), "sha256": _sha256(current)}
        state = dict(state, step=int(step), files=files)
        state[STATE_HASH_KEY] = _state_digest(state)
        current = os.path.join(tmp, STATE_FILE)
        with open(current, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_path(tmp, directory=True)
        current = final
        if os.path.exists(final):  # re-saving a step: move the old one aside, drop it at the end
            os.rename(final, old)
            moved_old = True
        os.rename(tmp, final)
        _fsync_path(run_dir, directory=True)

        current = os.path.join(run_dir, LATEST_FILE)
        latest_tmp = current + ".tmp"
        with open(latest_tmp, "w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(latest_tmp, current)
        _fsync_path(run_dir, directory=True)
    except (OSError, SafetensorError) as e:
        _remove(tmp)
        _remove(os.path.join(run_dir, LATEST_FILE + ".tmp"))
        if moved_old and not os.path.exists(final):
            os.rename(old, final)  # the step's earlier checkpoint goes back where it was
        elif moved_old:
            _remove(old)  # the new ckpt-<step> is complete; only `latest` failed
        raise _write_error(e, current) from None

    if moved_old:
        shutil.rmtree(old)
    _prune(run_dir, step, keep)
    return final


def _prune(run_dir, current_step, keep):
    steps = _checkpoint_steps(run_dir)
    kept = set(sorted(steps)[-keep:]) | {current_step}
    for s, path in steps.items():
        if s not in kept:
            shutil.rmtree(path, ignore_errors=True)
    for name in os.listdir(run_dir):  # leftovers of writers killed mid-checkpoint
        if name.startswith(".tmp-") and not name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)


def latest_checkpoint(run_dir):
    """The folder `latest` names in run_dir, or None when the run has no checkpoint."""
    latest = os.path.join(run_dir, LATEST_FILE)
    if not os.path.isfile(latest):
        return None
    with open(latest, "rb") as f:
        raw = f.read()
    name = raw[:-1].decode("ascii", errors="replace")
    # written whole (os.replace) and newline-terminated: anything else is a damaged file
    if not raw.endswith(b"\n") or not _CKPT_RE.match(name):
        raise ValueError(f"{latest}: corrupt or truncated: expected a line 'ckpt-<step>', got "
                         f"{raw[:64]!r}")
    path = os.path.join(run_dir, name)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{latest} names {name}, which does not exist")
    return path


def resolve_checkpoint(path):
    """A checkpoint folder from either itself or a run folder (through `latest`)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint or run folder not found: {path}")
    if os.path.isfile(os.path.join(path, STATE_FILE)):
        return path
    found = latest_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"{path}: no checkpoint (neither {STATE_FILE} nor {LATEST_FILE})")
    return found


def read_state(ckpt_dir):
    """state.json of a checkpoint folder, as a dict; ValueError naming the file if damaged."""
    path = os.path.join(ckpt_dir, STATE_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file missing: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: corrupt checkpoint state: {e}") from None
    if not isinstance(state, dict) or "step" not in state or "files" not in state:
        raise ValueError(f"{path}: corrupt checkpoint state: missing step or files")
    files = state["files"]
    if (isinstance(state["step"], bool) or not isinstance(state["step"], int)
            or not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values())):
        raise ValueError(f"{path}: corrupt checkpoint state: step must be an int and files a "
                         f"mapping of file names to their sizes and hashes")
    if state.get(STATE_HASH_KEY) != _state_digest(state):
        raise ValueError(f"{path}: corrupt checkpoint state: its content does not match its "
                         f"{STATE_HASH_KEY}")
    return state


def read_checkpoint(path):
    """Load (model_tensors, optim_tensors, state) from a checkpoint or run folder, checking every
    file against the sizes and hashes in state.json."""
    ckpt_dir = resolve_checkpoint(path)
    state = read_state(ckpt_dir)
    tensors = []
    for fname in (MODEL_FILE, OPTIM_FILE):
        fpath = os.path.join(ckpt_dir, fname)
        if not os.path.isfile(fpath):
            raise FileNotFoundError(f"checkpoint file missing: {fpath}")
        expected = state["files"].get(fname, {})
        size = os.path.getsize(fpath)
        if size != expected.get("bytes") or _sha256(fpath) != expected.get("sha256"):
            raise ValueError(f"{fpath}: corrupt checkpoint file: size or sha256 differs from "
                             f"{STATE_FILE} ({size} bytes, expected {expected.get('bytes')})")
        try:
            tensors.append(load_file(fpath))
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{fpath}: unreadable safetensors file: {e}") from None
    return tensors[0], tensors[1], state


def _as_numpy(value):
    return value if isinstance(value, np.ndarray) else np.asarray(value.numpy())


def tied_aliases(model):
    """{alias: first name} for parameters registered under more than one name (GPT's lm_head
    weight is wte's); named_parameters() lists each of them once, under the first name."""
    firsts, aliases = {}, {}
    for mname, module in model.named_modules():
        for pname, _ in module.named_parameters():
            if "." in pname:  # a child's parameter; visited with the child itself
                continue
            full = f"{mname}.{pname}" if mname else pname
            first = firsts.setdefault(id(getattr(module, pname)), full)
            if first != full:
                aliases[full] = first
    return aliases


def model_tensors(model):
    """A model's parameters as numpy arrays, a tied parameter stored once under its first name."""
    return {name: _as_numpy(p) for name, p in model.named_parameters()}


def load_model_tensors(model, tensors, source="checkpoint"):
    """Copy saved arrays into `model` in place, refilling tied aliases from their first name."""
    full = dict(tensors)
    for alias, first in tied_aliases(model).items():
        if alias not in full and first in full:
            full[alias] = full[first]
    try:
        model.load_state_dict(full)
    except (KeyError, ValueError, TypeError) as e:  # missing/extra names, shapes, dtypes
        raise ValueError(f"{source}: tensors do not match the model: {e}") from None


def flatten_optimizer(sd):
    """Split an optimizer state_dict into flat arrays (state.{i}.{key}) and JSON metadata."""
    tensors, meta_state = {}, {}
    for idx, entry in sd["state"].items():
        meta_entry = {}
        for key, value in entry.items():
            if isinstance(value, (int, float, np.integer, np.floating)):
                meta_entry[key] = value.item() if hasattr(value, "item") else value
            else:
                tensors[f"state.{idx}.{key}"] = _as_numpy(value)
        meta_state[str(idx)] = meta_entry
    groups = []
    for g in sd["param_groups"]:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()})
    return tensors, {"state": meta_state, "param_groups": groups}


def unflatten_optimizer(tensors, meta):
    """Inverse of flatten_optimizer: the optimizer state_dict in torch's shape."""
    state = {int(i): dict(entry) for i, entry in meta["state"].items()}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    groups = []
    for g in meta["param_groups"]:
        groups.append({k: (tuple(v) if k == "betas" else v) for k, v in g.items()})
    return {"state": state, "param_groups": groups}


def save_checkpoint(run_dir, step, model, optimizer, state, keep=2):
    """Checkpoint a model, its optimizer and extra JSON state as run_dir/ckpt-<step>."""
    optim_tensors, optim_meta = flatten_optimizer(optimizer.state_dict())
    return write_checkpoint(run_dir, step, model_tensors(model), optim_tensors,
                            dict(state, optimizer=optim_meta), keep=keep)


def load_checkpoint(path, model, optimizer=None):
    """Restore a model (and optimizer) from a checkpoint or run folder; returns state.json."""
    model_t, optim_t, state = read_checkpoint(path)
    load_model_tensors(model, model_t, source=path)
    if optimizer is not None:
        try:
            optimizer.load_state_dict(unflatten_optimizer(optim_t, state["optimizer"]))
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            # a state written for another optimizer or model, or one edited by hand
            raise ValueError(f"{path}: the optimizer state does not match the optimizer: "
                             f"{type(e).__name__}: {e}") from None
    return state
