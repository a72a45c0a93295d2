"""cgad.optim: Adam and AdamW (the update runs in C++, one multi-tensor step)."""
from cgad.optim.adam import Adam, AdamW  # noqa: F401
