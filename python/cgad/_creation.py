"""Tensor creation: cgad.tensor, zeros/ones/empty/full/randn/rand, arange, and the list-taking ops."""
import builtins
import math
import numbers

import numpy as np

from cgad import _C

_NP_KEPT = {"float32", "float64", "int32", "int64", "bool"}


def _as_array(data, dtype):
    """A numpy array for `data` with cgad's default dtypes (Python float -> float32, int -> int64)."""
    if isinstance(data, _C.Tensor):
        return data.numpy(), data.dtype if dtype is None else dtype
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        arr = np.asarray(data)
        if arr.dtype.name not in _NP_KEPT:
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
            elif arr.dtype.kind in "iu":
                arr = _to_int64(arr)
            else:
                raise TypeError(f"tensor: unsupported numpy dtype {arr.dtype}")
        return arr, dtype
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"tensor: cannot build a tensor from {type(data).__name__}: {e}") from None
    kind = arr.dtype.kind
    if kind in "fuO":  # where numpy puts ints beyond int64 (as float64 when mixed with small ones)
        big = _int_beyond_int64(data)
        if big is not None:
            raise ValueError(f"tensor: the Python int {big} does not fit in int64")
    if kind == "f":
        arr = arr.astype(np.float32)
    elif kind in "iu":
        arr = _to_int64(arr)
    elif kind != "b":
        raise TypeError(f"tensor: expected numbers (or nested lists of numbers), got {type(data).__name__} "
                        f"with elements of numpy kind {arr.dtype.name!r}")
    return arr, dtype


def _int_beyond_int64(data):
    """The first Python int outside int64 in nested lists/tuples of data, else None (as torch,
    which reads every int as an int64, such an int is an error even in a float tensor)."""
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, builtins.bool) and not -2**63 <= v < 2**63:
            return v
    return None


def _to_int64(arr):
    """arr (any integer dtype) as int64; ValueError for a value int64 cannot hold (uint64's top half)."""
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.size and arr.max() >= 2**63:
        raise ValueError(f"tensor: the value {int(arr.max())} does not fit in int64")
    return arr.astype(np.int64)


def _finish(t, dtype, device, requires_grad):
    if dtype is not None:
        t = _C.to_dtype(t, dtype)
    t = t.to(_C.device_of(device))
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device="cpu", requires_grad=False):
    """A new tensor holding a copy of `data` (a number, nested list, numpy array or tensor)."""
    arr, dtype = _as_array(data, dtype)
    if dtype is not None and arr.dtype.kind in "iu" and arr.size and _C.dtype_of(dtype) == _C.dtype.int32:
        # numbers given for an int32 tensor must fit it (a cast between tensors wraps, as torch's)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < -2**31 or hi >= 2**31:
            raise ValueError(f"tensor: the value {hi if hi >= 2**31 else lo} does not fit in int32")
    return _finish(_C.from_numpy(arr), dtype, device, requires_grad)


def from_numpy(a):
    """A tensor holding a copy of the numpy array `a` (float32/float64/int32/int64/bool)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(a).__name__}")
    return _C.from_numpy(a)


def _shape(args, op):
    """torch's `*size` convention: f(2, 3) or f((2, 3)) or f([2, 3])."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    shape = []
    for d in args:
        if isinstance(d, builtins.bool) or not isinstance(d, (numbers.Integral,)):
            raise TypeError(f"{op}: sizes must be ints, got {d!r} of type {type(d).__name__}")
        if d < 0:
            raise ValueError(f"{op}: negative dimension {d} in size {tuple(args)}")
        if d >= 2**63:
            raise ValueError(f"{op}: dimension {d} in size {tuple(args)} is too large")
        shape.append(int(d))
    return shape


def _created(t, device, requires_grad):
    return _finish(t, None, device, requires_grad)


def empty(*size, dtype=None, device="cpu", requires_grad=False):
    """An uninitialized tensor of the given size."""
    return _created(_C.empty(_shape(size, "empty"), dtype or _C.dtype.float32, device), device, requires_grad)


def zeros(*size, dtype=None, device="cpu", requires_grad=False):
    """A tensor of zeros."""
    return _created(_C.zeros(_shape(size, "zeros"), dtype or _C.dtype.float32, device), device, requires_grad)


def ones(*size, dtype=None, device="cpu", requires_grad=False):
    """A tensor of ones."""
    return full(_shape(size, "ones"), 1.0, dtype=dtype, device=device, requires_grad=requires_grad)


def full(size, fill_value, dtype=None, device="cpu", requires_grad=False):
    """A tensor filled with `fill_value`."""
    if not isinstance(fill_value, numbers.Number):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    if dtype is None:
        dtype = (_C.dtype.bool if isinstance(fill_value, builtins.bool)
                 else _C.dtype.int64 if isinstance(fill_value, numbers.Integral) else _C.dtype.float32)
    _check_fits(fill_value, _C.dtype_of(dtype), "full")
    shape = _shape((size,), "full")
    if isinstance(fill_value, numbers.Integral) and abs(int(fill_value)) > 2**53 and _C.dtype_of(dtype) in _INT_RANGE:
        # beyond 2**53 a double would round the int: copied in exactly from an int64 scalar
        value = _C.from_numpy(np.array(int(fill_value), dtype=np.int64))
        t = _C.empty(shape, dtype, device)
        _C.copy_(t, _C.to_device(value, t.device))
        return _created(t, device, requires_grad)
    try:
        value = float(fill_value)
    except OverflowError:
        raise ValueError(f"full: value {fill_value} is too large for {_C.dtype_of(dtype)!r}") from None
    return _created(_C.full(shape, value, dtype, device), device, requires_grad)


_INT_RANGE = {_C.dtype.int32: (-2**31, 2**31), _C.dtype.int64: (-2**63, 2**63)}


def _check_fits(value, dtype, op):
    """ValueError for a value an integer dtype cannot hold (NaN, inf, out of range), as torch."""
    if dtype in _INT_RANGE:
        lo, hi = _INT_RANGE[dtype]
        if not (isinstance(value, numbers.Integral) or math.isfinite(value)) or not lo - 1 < value < hi:
            raise ValueError(f"{op}: value {value!r} cannot be converted to {dtype!r} without overflow")


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros with t's shape (and dtype unless given)."""
    _check_tensor(t, "zeros_like")
    return zeros(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones with t's shape (and dtype unless given)."""
    _check_tensor(t, "ones_like")
    return ones(t.shape, dtype=dtype or t.dtype, device=t.device, requires_grad=requires_grad)


def randn(*size, dtype=None, device="cpu", requires_grad=False):
    """Standard normal samples from cgad's generator (cgad.manual_seed reproduces them)."""
    return _created(_C.randn(_shape(size, "randn"), dtype or _C.dtype.float32, device), device, requires_grad)


def rand(*size, dtype=None, device="cpu", requires_grad=False):
    """Uniform samples in [0, 1) from cgad's generator."""
    return _created(_C.rand(_shape(size, "rand"), dtype or _C.dtype.float32, device), device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device="cpu"):
    """Values from start to end (exclusive) by step; int64 when all arguments are ints, like torch."""
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        if isinstance(v, builtins.bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"arange: {name} must be a number, got {type(v).__name__}")
    ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    if dtype is None:
        dtype = _C.dtype.int64 if ints else _C.dtype.float32
    if ints and max(abs(int(start)), abs(int(end)), abs(int(step))) > 2**53:
        # past 2**53 doubles skip integers: computed exactly in Python ints instead
        if step == 0:
            raise ValueError("arange: step must be nonzero")
        for name, v in (("start", start), ("end", end)):
            if not -2**63 <= int(v) < 2**63:
                raise ValueError(f"arange: {name} {int(v)} does not fit in int64")
        start, end, step = int(start), int(end), int(step)
        n = max(0, (end - start + step - (1 if step > 0 else -1)) // step)
        if n and _C.dtype_of(dtype) in _INT_RANGE:
            _check_fits(start + step * (n - 1), _C.dtype_of(dtype), "arange")
        # int64 wraps modulo 2**64, so start + step * i is exact whenever the result fits
        with np.errstate(over="ignore"):
            values = np.int64(start) + np.int64(step if n > 1 else 0) * np.arange(n, dtype=np.int64)
        return _created(_C.to_dtype(_C.from_numpy(values), dtype), device, False)
    return _created(_C.arange(float(start), float(end), float(step), dtype, device), device, False)


def _check_tensor(t, op, name="input"):
    if not isinstance(t, _C.Tensor):
        raise TypeError(f"{op}: {name} must be a cgad.Tensor, got {type(t).__name__}")


def tril(t, diagonal=0):
    """The lower triangle of the last two dims (elements above `diagonal` set to zero)."""
    _check_tensor(t, "tril")
    if isinstance(diagonal, builtins.bool) or not isinstance(diagonal, numbers.Integral):
        raise TypeError(f"tril: diagonal must be an int, got {diagonal!r}")
    return _C.tril(t, max(-2**63, min(2**63 - 1, int(diagonal))))  # beyond int64 keeps or drops all


def multinomial(probs, num_samples, replacement=False):
    """Samples indices from each row of non-negative weights `probs` (int64 result)."""
    _check_tensor(probs, "multinomial", "probs")
    if replacement:
        raise ValueError("multinomial: replacement=True is not supported")
    if isinstance(num_samples, builtins.bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(f"multinomial: num_samples must be an int, got {num_samples!r} of type "
                        f"{type(num_samples).__name__}")
    if not 0 <= num_samples < 2**63:
        raise ValueError(f"multinomial: num_samples must be in [0, 2**63), got {num_samples}")
    return _C.multinomial(probs, int(num_samples))


def _tensor_list(ts, op):
    if isinstance(ts, _C.Tensor) or not isinstance(ts, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of tensors, got {type(ts).__name__}")
    for i, t in enumerate(ts):
        _check_tensor(t, op, f"element {i}")
    return list(ts)


def _dim(dim, op):
    if isinstance(dim, builtins.bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -2**63 <= dim < 2**63:
        raise IndexError(f"{op}: dim {dim} is out of range")
    return int(dim)


def cat(tensors, dim=0):
    """Concatenates tensors along an existing dim."""
    return _C.cat(_tensor_list(tensors, "cat"), _dim(dim, "cat"))


def stack(tensors, dim=0):
    """Stacks same-shaped tensors along a new dim."""
    return _C.stack(_tensor_list(tensors, "stack"), _dim(dim, "stack"))


def where(condition, input, other):
    """Elementwise choice: input where condition is true, else other (numbers allowed)."""
    _check_tensor(condition, "where", "condition")
    ref = input if isinstance(input, _C.Tensor) else other if isinstance(other, _C.Tensor) else condition
    a = input if isinstance(input, _C.Tensor) else _C.scalar_like(ref, input, "where")
    b = other if isinstance(other, _C.Tensor) else _C.scalar_like(ref, other, "where")
    return _C.where(condition, a, b)
