"""cgad.cuda: device queries. This build's answers come from the compiled extension."""
from cgad import _C


def is_available():
    """True when cgad was built with CUDA and a GPU is present."""
    return bool(_C.cuda_is_available())


def device_count():
    """Number of visible CUDA devices (0 without CUDA)."""
    return int(_C.cuda_device_count())


def synchronize(device=None):
    """Waits for all work queued on the device; a RuntimeError when CUDA is absent."""
    if not is_available():
        raise RuntimeError("cgad.cuda.synchronize: CUDA is not available (cgad was built without CUDA or no GPU is present)")
    _C.cuda_synchronize()
