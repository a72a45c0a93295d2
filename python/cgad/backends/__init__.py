"""cgad.backends: per-backend settings, named as torch.backends names them."""
from cgad.backends import cuda  # noqa: F401
