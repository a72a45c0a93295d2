"""cgad.autocast: mixed precision regions (bf16 matmuls and attention with fp32 accumulation)."""
from cgad import _C


class autocast:
    """``with cgad.autocast("cuda", dtype=cgad.bfloat16):`` runs matmuls and attention in bf16.

    CUDA only: on the CPU, or in a build without CUDA, entering the region is a RuntimeError
    rather than a silent fp32 run.
    """

    def __init__(self, device_type, dtype=None, enabled=True):
        if not isinstance(device_type, str) or device_type not in ("cuda", "cpu"):
            raise ValueError(f"autocast: unknown device_type {device_type!r} (expected 'cuda' or 'cpu')")
        self.device_type = device_type
        self.dtype = dtype
        self.enabled = bool(enabled)

    def __enter__(self):
        if self.enabled and (self.device_type != "cuda" or not _C.cuda_is_available()):
            raise RuntimeError(f"autocast({self.device_type!r}): mixed precision needs a CUDA build and a GPU")
        # the engine keeps the state per thread beside grad mode; the region restores it on exit
        self._prev = _C.get_autocast(self.device_type)
        _C.set_autocast(self.device_type, self.enabled, self.dtype or _C.dtype.bfloat16)
        return self

    def __exit__(self, *exc):
        _C.set_autocast(self.device_type, *self._prev)
        return False
