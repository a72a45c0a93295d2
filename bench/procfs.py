"""The process's resident memory from /proc/self (Linux), for the benchmarks and the memory test.
Standard library only, so importing it adds nothing to a benchmarked process's RSS."""


def status_kib(field):
    """A VmRSS/VmHWM-style field of /proc/self/status in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss():
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
