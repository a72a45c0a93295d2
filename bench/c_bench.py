"""Compiles and runs one of bench/'s C measurements (fma_peak.c, bf16_peak.c, amx_peak.c,
stream_read.c): each takes the thread count and prints one number."""
import os
import shutil
import subprocess
import tempfile


def run_c_bench(name, flags, threads):
    """The number bench/<name>.c prints on `threads` threads, compiled with -O2 -fopenmp and
    `flags`; None without a C compiler or when it does not build or run."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, name)
        if subprocess.run([cc, "-O2", *flags, "-fopenmp", src, "-o", exe], capture_output=True).returncode != 0:
            return None
        ran = subprocess.run([exe, str(threads)], capture_output=True, text=True)
        return float(ran.stdout) if ran.returncode == 0 else None
