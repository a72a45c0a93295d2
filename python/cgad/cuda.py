"""cgad.cuda: device queries. This build's answers come from the compiled extension; the CUDA
backend is experimental (README), built only with CGAD_CUDA=ON."""
import numbers

from cgad import _C


def is_available():
    """True when cgad was built with CUDA and a GPU is present."""
    return bool(_C.cuda_is_available())


def device_count():
    """Number of visible CUDA devices (0 without CUDA)."""
    return int(_C.cuda_device_count())


def synchronize(device=None):
    """Waits for all work queued on the device (default "cuda", i.e. cuda:0); a RuntimeError when
    CUDA is absent."""
    if not is_available():
        raise RuntimeError("cgad.cuda.synchronize: CUDA is not available (cgad was built without CUDA or no GPU is present)")
    _C.cuda_synchronize(_index(device))


def _index(device):
    if device is None:
        return 0
    if isinstance(device, numbers.Integral):
        return int(device)
    d = _C.device(str(device))
    if d.type != "cuda":
        raise ValueError(f"cgad.cuda: expected a CUDA device, got {device!r}")
    return d.index


from cgad import backends  # noqa: E402,F401  (cgad.backends.cuda.matmul.allow_tf32)
