"""The layering of csrc/ (docs/architecture.md), checked on the source: core includes nothing from
the other folders, ops reach kernels only through the per-device table (no loops over data, no
OpenMP, no backend calls, no host reads of tensor data), optim and bindings call no backend, and
backends see only core and the kernel declarations."""
import pathlib
import re

import pytest

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

# folder: the folders its files may include from
ALLOWED_INCLUDES = {
    "core": {"core"},
    "kernels": {"core", "kernels"},
    "autograd": {"core", "autograd", "ops", "kernels"},
    "ops": {"core", "autograd", "ops", "kernels"},
    "optim": {"core", "autograd", "ops", "kernels", "optim"},
    "bindings": {"core", "autograd", "ops", "optim", "bindings", "kernels"},
    "backends": {"core", "kernels", "backends"},
}
# single headers a folder may include beyond its layers: the CUDA part of the bindings asks the
# CUDA runtime layer for the device count, synchronize and the TF32 switch
ALLOWED_HEADERS = {"bindings": {"backends/cuda/runtime.h"}}
# what may not appear in the code of a folder (comments stripped)
FORBIDDEN = {
    "ops": [r"\bcpu::", r"#\s*pragma\s+omp", r"\bomp_", r"\.data<", r"\braw_data\("],
    "optim": [r"\bcpu::", r"#\s*pragma\s+omp", r"\.data<", r"\braw_data\("],
    "bindings": [r"\bcpu::", r"#\s*pragma\s+omp"],
}


def sources(folder):
    return sorted(p for p in (CSRC / folder).rglob("*") if p.suffix in (".h", ".cpp", ".cu", ".cuh"))


def code_of(path):
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


@pytest.mark.parametrize("folder", list(ALLOWED_INCLUDES))
def test_includes_follow_the_layers(folder):
    bad = []
    for path in sources(folder):
        for inc in INCLUDE.findall(path.read_text()):
            top = inc.split("/")[0]
            if "/" in inc and top not in ALLOWED_INCLUDES[folder] and inc not in ALLOWED_HEADERS.get(folder, ()):
                bad.append(f"{path.relative_to(CSRC)} includes {inc}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("folder", list(FORBIDDEN))
def test_no_kernels_outside_the_backends(folder):
    bad = []
    for path in sources(folder):
        code = code_of(path)
        for pattern in FORBIDDEN[folder]:
            for m in re.finditer(pattern, code):
                line = code[:m.start()].count("\n") + 1
                bad.append(f"{path.relative_to(CSRC)}:{line}: {m.group(0)!r}")
    assert not bad, "\n".join(bad)


def test_the_scan_sees_the_tree():
    # guards the guard: a moved folder would otherwise pass every check above vacuously
    for folder in ALLOWED_INCLUDES:
        assert sources(folder), folder
