"""cgad: a compiled C++ autodiff engine with a GPT-2 training stack on top.

Tensors, ops and autograd run in C++ (``cgad._C``); this package adds the torch-like Python
surface: creation functions, nn, optim, data, the trainer and the GPT-2 model.
"""
from cgad import _env

_env.apply()

from cgad import _C  # noqa: E402
from cgad._C import Tensor, device, dtype  # noqa: E402,F401
from cgad._C import get_num_threads, set_num_threads, manual_seed  # noqa: E402,F401
from cgad._C import get_rng_state, set_rng_state, is_grad_enabled  # noqa: E402,F401
from cgad._C import empty_cache, reset_peak_memory_stats  # noqa: E402,F401

# pybind11 enums chain a second __eq__ behind their own, so the string-aware forms are set here.
dtype.__eq__ = lambda self, other: self.same_as(other)
dtype.__hash__ = lambda self: int(self)
dtype.__repr__ = dtype.__str__ = lambda self: f"cgad.{self.name}"

float32 = dtype.float32
float64 = dtype.float64
bfloat16 = dtype.bfloat16
int32 = dtype.int32
int64 = dtype.int64
bool = dtype.bool  # noqa: A001  (cgad.bool, like torch.bool)
float = float32  # noqa: A001
double = float64
long = int64

from cgad._creation import (  # noqa: E402,F401
    tensor, from_numpy, zeros, ones, empty, full, randn, rand, arange, zeros_like, ones_like,
    tril, multinomial, cat, stack, where,
)
from cgad._grad_mode import no_grad, enable_grad, set_grad_enabled  # noqa: E402,F401
from cgad import _tensor  # noqa: E402,F401  (adds the Python-side Tensor methods)
from cgad import cuda  # noqa: E402,F401
from cgad._autocast import autocast  # noqa: E402,F401
from cgad import nn, optim  # noqa: E402,F401


def memory_stats(device="cpu"):
    """Allocator counters for a device: os_allocs, os_bytes, cached_bytes, peak_bytes, allocated_bytes."""
    return _C.memory_stats(str(device))


__version__ = "0.1.0"
