"""Tensor methods whose torch-style argument forms are easiest to normalize in Python.

The compiled class (cgad._C.Tensor) carries storage, autograd and the operators; this module
adds methods such as reshape(2, 3) / reshape((2, 3)), sum(dim=(0, 1)), to("cpu"), item().
"""
import numbers

import numpy as np

from cgad import _C

Tensor = _C.Tensor


def _method(fn):
    """Installs fn as a Tensor method. Defined as _name here so that methods such as sum, max
    and float never shadow the builtins inside this module."""
    name = fn.__name__[1:]
    fn.__name__ = fn.__qualname__ = name
    setattr(Tensor, name, fn)
    return fn


def _sizes(args, op, name="size"):
    """reshape(2, -1) or reshape((2, -1)): ints, -1 allowed (checked in C++)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    for d in args:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"{op}: {name}s must be ints, got {d!r} of type {type(d).__name__}")
    return [_in_int64(int(d), op, name) for d in args]


def _dims(dim, op):
    """None -> [] (all dims); an int or a tuple/list of ints -> a list."""
    if dim is None:
        return []
    if isinstance(dim, (tuple, list)):
        if len(dim) == 0:
            return []
        return [_int(d, op, "dim") for d in dim]
    return [_int(dim, op, "dim")]


def _int(v, op, name, bounded=True):
    """An int argument: TypeError for other types; with `bounded`, one beyond int64 is out of range
    (IndexError for a dim, ValueError for a size)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{op}: {name} must be an int, got {v!r} of type {type(v).__name__}")
    return _in_int64(int(v), op, name) if bounded else int(v)


def _in_int64(v, op, name):
    if -2**63 <= v < 2**63:
        return v
    if name == "dim":
        raise IndexError(f"{op}: dim {v} is out of range")
    raise ValueError(f"{op}: {name} {v} is out of range")


@_method
def _reshape(self, *shape):
    """A tensor with the same data in a new shape (a view when possible); one dim may be -1."""
    return _C.reshape(self, _sizes(shape, "reshape"))


@_method
def _view(self, *shape):
    """A view in a new shape; RuntimeError when the strides do not allow one (use reshape)."""
    return _C.view(self, _sizes(shape, "view"))


@_method
def _permute(self, *dims):
    """The dims reordered."""
    return _C.permute(self, _sizes(dims, "permute", "dim"))


@_method
def _expand(self, *sizes):
    """A broadcast view; -1 keeps a dim's size."""
    return _C.expand(self, _sizes(sizes, "expand"))


@_method
def _size(self, dim=None):
    """The shape, or one dim's size."""
    if dim is None:
        return self.shape
    return self.shape[_C.wrap_dim(_int(dim, "size", "dim"), self.ndim, "size")]


@_method
def _sum(self, dim=None, keepdim=False):
    """Sum over dim (an int, a tuple, or None for all)."""
    return _C.sum(self, _dims(dim, "sum"), bool(keepdim))


@_method
def _mean(self, dim=None, keepdim=False):
    """Mean over dim (an int, a tuple, or None for all); floating tensors only."""
    return _C.mean(self, _dims(dim, "mean"), bool(keepdim))


@_method
def _max(self, dim=None, keepdim=False):
    """max() -> 0-d maximum; max(dim, keepdim) -> (values, indices)."""
    if dim is None:
        return _C.max_all(self)
    return tuple(_C.max_dim(self, _int(dim, "max", "dim"), bool(keepdim)))


@_method
def _argmax(self, dim=None, keepdim=False):
    """int64 indices of the maxima (forward only)."""
    return _C.argmax(self, None if dim is None else _int(dim, "argmax", "dim"), bool(keepdim))


@_method
def _topk(self, k, dim=-1):
    """(values, indices) of the k largest along dim, largest first (forward only)."""
    return tuple(_C.topk(self, _int(k, "topk", "k"), _int(dim, "topk", "dim")))


@_method
def _split(self, split_size_or_sections, dim=0):
    """Pieces of split_size along dim (the last may be smaller), or of the listed sizes."""
    dim = _int(dim, "split", "dim")
    if self.ndim == 0:
        raise IndexError("split: expected a tensor with at least 1 dim, got a 0-d tensor")
    n = self.shape[_C.wrap_dim(dim, self.ndim, "split")]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [_int(s, "split", "section size") for s in split_size_or_sections]
    else:
        size = _int(split_size_or_sections, "split", "split_size", bounded=False)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        if not sizes:
            sizes = [0]
    return tuple(_C.split(self, sizes, dim))


@_method
def _chunk(self, chunks, dim=0):
    """`chunks` pieces of equal size along dim (the last may be smaller), as torch.chunk."""
    chunks = _int(chunks, "chunk", "chunks", bounded=False)
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    dim = _int(dim, "chunk", "dim")
    if self.ndim == 0:
        raise IndexError("chunk: expected a tensor with at least 1 dim, got a 0-d tensor")
    n = self.shape[_C.wrap_dim(dim, self.ndim, "chunk")]
    if n == 0:  # torch: `chunks` empty pieces
        return self.split([0] * chunks, dim)
    return self.split(-(-n // chunks), dim)


@_method
def _softmax(self, dim):
    """Softmax along dim."""
    return _C.softmax(self, _int(dim, "softmax", "dim"))


@_method
def _log_softmax(self, dim):
    """Log-softmax along dim (computed with log-sum-exp)."""
    return _C.log_softmax(self, _int(dim, "log_softmax", "dim"))


@_method
def _to(self, *args, dtype=None, device=None):
    """t.to(dtype), t.to(device) or t.to(device, dtype): a converted tensor (self when unchanged)."""
    for a in args:
        if isinstance(a, (_C.dtype,)) or (isinstance(a, str) and _is_dtype_name(a)):
            dtype = a
        elif isinstance(a, (str, _C.device)):
            device = a
        elif isinstance(a, Tensor):
            dtype, device = a.dtype, a.device
        else:
            raise TypeError(f"to: expected a dtype or a device, got {a!r}")
    out = self
    if device is not None:
        dev = _C.device_of(device)
        if dev != self.device:
            out = _C.to_device(out, dev)
    if dtype is not None:
        out = _C.to_dtype(out, dtype)
    return out


def _is_dtype_name(s):
    try:
        _C.dtype_of(s)
        return True
    except TypeError:
        return False














def _converter(name, dt):
    def convert(self):
        return _C.to_dtype(self, dt)
    convert.__name__ = name
    convert.__doc__ = f"This tensor as {dt!r}."
    setattr(Tensor, name, convert)


for _name, _dt in (("float", _C.dtype.float32), ("double", _C.dtype.float64), ("long", _C.dtype.int64),
                   ("int", _C.dtype.int32), ("bool", _C.dtype.bool), ("bfloat16", _C.dtype.bfloat16)):
    _converter(_name, _dt)


@_method
def _cpu(self):
    """This tensor on the CPU."""
    return self.to("cpu")


@_method
def _cuda(self, device=None):
    """This tensor on a CUDA device (RuntimeError in a build without CUDA)."""
    return self.to("cuda" if device is None else f"cuda:{device}" if isinstance(device, numbers.Integral) else device)


@_method
def _type_as(self, other):
    """This tensor in other's dtype."""
    if not isinstance(other, Tensor):
        raise TypeError(f"type_as: other must be a cgad.Tensor, got {type(other).__name__}")
    return _C.to_dtype(self, other.dtype)


@_method
def _item(self):
    """The single value as a Python number (a host copy; not part of the graph)."""
    if self.numel() != 1:
        raise ValueError(f"item: only one-element tensors can be converted to Python scalars, got shape {self.shape}")
    return self.numpy().reshape(()).item()


@_method
def _tolist(self):
    """Nested Python lists of the values (a host copy; not part of the graph)."""
    return self.numpy().tolist()


def _array(self, dtype=None, copy=None):
    a = self.numpy()
    return a if dtype is None else a.astype(dtype)


Tensor.__array__ = _array
Tensor.__float__ = lambda self: float(self.item())
Tensor.__int__ = lambda self: int(self.item())


def _bool(self):
    if self.numel() != 1:
        raise RuntimeError(f"the truth value of a tensor with {self.numel()} elements is ambiguous")
    return bool(self.item())


Tensor.__bool__ = _bool


def _iter(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (self[i] for i in range(self.shape[0]))


Tensor.__iter__ = _iter


def _repr(self):
    body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
    extras = []
    if self.dtype not in (_C.dtype.float32, _C.dtype.int64, _C.dtype.bool):
        extras.append(f"dtype={self.dtype!r}")
    if self.device != "cpu":
        extras.append(f"device='{self.device}'")
    if self.grad_fn is not None:
        extras.append(f"grad_fn=<{self.grad_fn}>")
    elif self.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + ", ".join([body] + extras) + ")"


Tensor.__repr__ = _repr
Tensor.__str__ = _repr
Tensor.T = property(lambda self: self.permute(*range(self.ndim - 1, -1, -1)), doc="The dims reversed.")
Tensor.mT = property(lambda self: self.transpose(-2, -1), doc="The last two dims swapped.")


@_method
def _copy_(self, src):
    """Copies src (a tensor, numpy array or number, broadcast to this shape) into this tensor in place.

    Not recorded by autograd: use it under no_grad on parameters (loading weights, init).
    """
    if not isinstance(src, Tensor):
        # Converted by the engine's checked copy, not numpy's cast (which turns NaN into an
        # arbitrary integer and wraps out-of-range values with only a warning).
        from cgad._creation import _as_array
        arr, _ = _as_array(src, None)
        if arr.dtype.kind == "f" and self.dtype == _C.dtype.float64:
            arr = np.asarray(src, dtype=np.float64)  # not through float32
        src = _C.from_numpy(arr)
    _C.copy_(self, src)
    return self


@_method
def _zero_(self):
    """Sets every element to zero in place (not recorded by autograd)."""
    _C.fill_(self, 0.0)
    return self


@_method
def _fill_(self, value):
    """Sets every element to value in place (not recorded by autograd)."""
    if isinstance(value, Tensor) or not isinstance(value, numbers.Real):
        raise TypeError(f"fill_: value must be a real number, got {type(value).__name__}")
    from cgad._creation import _INT_RANGE, _check_fits
    if isinstance(value, numbers.Integral) and self.dtype in _INT_RANGE:
        _check_fits(int(value), self.dtype, "fill_")  # named exactly, not as the double it rounds to
    if isinstance(value, numbers.Integral) and abs(int(value)) > 2**53 and self.dtype in _INT_RANGE:
        # a double would round it: copied from an exact int64
        _C.copy_(self, _C.to_device(_C.from_numpy(np.array(int(value), dtype=np.int64)), self.device))
        return self
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"fill_: value {value} cannot be converted to {self.dtype!r} without overflow") from None
    _C.fill_(self, value)
    return self


@_method
def _normal_(self, mean=0.0, std=1.0):
    """Fills in place with N(mean, std^2) samples from cgad's generator (not recorded by autograd)."""
    _C.copy_(self, _C.randn(list(self.shape), _C.dtype.float64, self.device) * float(std) + float(mean))
    return self


@_method
def _uniform_(self, a=0.0, b=1.0):
    """Fills in place with U(a, b) samples from cgad's generator (not recorded by autograd)."""
    _C.copy_(self, _C.rand(list(self.shape), _C.dtype.float64, self.device) * (float(b) - float(a)) + float(a))
    return self

