"""Thread-pool settings that must be in the environment before OpenMP and OpenBLAS load.

cgad runs OpenBLAS single-threaded inside its own OpenMP threads (csrc/backends/cpu/gemm.cpp), so
one pool does all the work. OpenBLAS still starts its pthreads pool at load, and other libraries
in the process (numpy's OpenBLAS, torch) bring theirs: idle pools that spin after each call steal
the cores from the working one. Measured here, a GEMM alternating with an OpenMP loop ran 2.4x
slower than the two alone with every pool at its library default, 1.27x with these short spins,
and 1.1x with one pool. A user's own settings always win.
"""
import os

DEFAULTS = {
    "OPENBLAS_THREAD_TIMEOUT": "4",  # OpenBLAS workers sleep after ~2^4 cycles of idling
    "GOMP_SPINCOUNT": "10000",       # libgomp workers spin ~10k iterations, then sleep
}


def apply():
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
