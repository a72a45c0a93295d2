"""cgad.autocast: mixed precision regions (bf16 matmuls and attention with fp32 accumulation)."""
import functools

from cgad import _C

_DEVICE_TYPES = ("cpu", "cuda", "test")


class autocast:
    """``with cgad.autocast("cpu", dtype=cgad.bfloat16):`` runs matmuls, linear and attention in bf16.

    The op table is DESIGN.md's: matmul/@, F.linear and F.scaled_dot_product_attention cast float32
    inputs to bf16 and return bf16; layer_norm, softmax, log_softmax, cross_entropy, sum and mean
    compute in float32; other ops follow type promotion. A parameter is cast once per region, and its
    grad arrives in float32. Nests like torch's (an inner ``enabled=False`` turns it off); also a
    decorator. "cuda" needs a CUDA build and a GPU.
    """

    def __init__(self, device_type, dtype=None, enabled=True):
        if not isinstance(device_type, str) or device_type not in _DEVICE_TYPES:
            raise ValueError(f"autocast: unknown device_type {device_type!r} (expected 'cpu' or 'cuda')")
        dtype = _C.dtype.bfloat16 if dtype is None else dtype
        if _C.dtype_of(dtype) != _C.dtype.bfloat16:
            raise TypeError(f"autocast: only dtype=cgad.bfloat16 is supported, got {dtype!r}")
        self.device_type = device_type
        self.dtype = _C.dtype.bfloat16
        self.enabled = bool(enabled)

    def __enter__(self):
        if self.enabled and self.device_type == "cuda" and not _C.cuda_is_available():
            raise RuntimeError("autocast('cuda'): mixed precision on CUDA needs a CUDA build and a GPU")
        # the engine keeps the state per thread beside grad mode; the region restores it on exit
        self._prev = _C.get_autocast(self.device_type)
        _C.set_autocast(self.device_type, self.enabled, self.dtype)
        return self

    def __exit__(self, *exc):
        _C.set_autocast(self.device_type, *self._prev)
        if not any(_C.get_autocast(d)[0] for d in _DEVICE_TYPES if d != "cuda" or _C.cuda_is_available()):
            _C.clear_autocast_cache()  # the outermost region is over: drop its parameter copies
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(self.device_type, self.dtype, self.enabled):
                return fn(*args, **kwargs)
        return wrapper
