"""cgad.backends.cuda: the CUDA backend's settings, as in torch.backends.cuda."""
from cgad import _C


class _Matmul:
    """`matmul.allow_tf32`: float32 GEMMs on TF32 tensor cores (about 10 mantissa bits, so
    float32 results no longer match the CPU's to 1e-4). Off by default, as in torch; train/gpt2.py
    --tf32 turns it on. Settable on any build (it only matters where CUDA is)."""

    @property
    def allow_tf32(self):
        return bool(_C.cuda_tf32_enabled())

    @allow_tf32.setter
    def allow_tf32(self, on):
        _C.set_cuda_tf32_enabled(bool(on))


matmul = _Matmul()
