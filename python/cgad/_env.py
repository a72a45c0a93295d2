"""Thread-pool settings that must be in the environment before OpenMP and OpenBLAS load.

OpenBLAS's pthreads pool and libgomp's pool both spin after each call; on a small machine
they steal the cores from each other, and a GEMM followed by an OpenMP loop ran about 4x
slower than either alone. Short spins fix that. A user's own settings always win.
"""
import os

DEFAULTS = {
    "OPENBLAS_THREAD_TIMEOUT": "4",  # OpenBLAS workers sleep after ~2^4 cycles of idling
    "GOMP_SPINCOUNT": "10000",       # libgomp workers spin ~10k iterations, then sleep
}


def apply():
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
