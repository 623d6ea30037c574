#!/usr/bin/env bash
# The GPU check of minicon's CuPy half: one script, under 10 minutes on one GPU.
#
#   1. installs minicon (only minicon itself, offline, when CuPy is already installed, as on
#      the device machine; else with the CUDA extra matching the driver, from the network);
#   2. runs tests/test_cupy.py, then every other test's CuPy case (MINICON_TEST_BACKENDS=cupy);
#   3. runs lesson 11 at MINICON_FAST=1 with its exercise solved (no Jupyter needed);
#   4. times the ConvNet and ResNet-18 steps on minicon/CuPy against PyTorch CUDA;
#   5. trains the SimCLR preset and short MoCo and CLIP runs with backend cupy on real
#      CIFAR-10, printing images/s and kNN accuracy.
#
# On your own GPU machine, from the repository root:
#     MINICON_DATA_DIR=/path/to/data bash benchmarks/gpu_check.sh    # data: cifar-10-batches-bin inside
# (without CuPy installed it installs the CUDA extra that matches `nvidia-smi`, which needs
# the network).
#
# Tables and logs go to $OUT (default ./gpu-check). Each step has its own time limit; a
# failing step is reported and the next one still runs; the exit status counts failures.
#
# The rest of this header is for this project's lent device machines (no network, and a
# 64 MiB limit on what a call carries).
# Data: MINICON_DATA_DIR if set, else every CIFAR-10 file found under .gpudata/ (in any
# subfolder). A device call carries at most 64 MiB of working tree, two of CIFAR-10's six
# 30 MB files. Prepare here, in the repository root:
#     echo /.gpudata/ >> .git/info/exclude && mkdir -p .gpudata/a .gpudata/b .gpudata/c
#     d=../shared/data/cifar-10-batches-bin
#     cp $d/data_batch_1.bin $d/data_batch_2.bin .gpudata/a/
#     cp $d/data_batch_3.bin $d/data_batch_4.bin .gpudata/b/
#     cp $d/data_batch_5.bin $d/test_batch.bin $d/batches.meta.txt .gpudata/c/
# then make three device calls back to back (a warm machine keeps the ignored paths an
# earlier call brought): carry [".gpudata/a"] with command `true`, carry [".gpudata/b"]
# with `true`, carry [".gpudata/c"] with `bash benchmarks/gpu_check.sh`. (Not yet tried on
# a device.) With only .gpudata/c, step 5 trains on data_batch_5's 10,000 images and says
# so, lesson 11 (which loads the whole training split) is reported as not run, and the
# tests that need all of CIFAR-10 skip.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
failures=0

step() {  # step NAME SECONDS LOG COMMAND...: run with a time limit, keep its output
    local name=$1 limit=$2 log=$OUT/$3
    shift 3
    echo "== $(date +%T) $name (limit ${limit}s) -> $log"
    timeout "$limit" "$@" > "$log" 2>&1
    local rc=$?
    tail -n 20 "$log"
    if [ "$rc" -ne 0 ]; then
        echo "== $name FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ', time limit'))"
        failures=$((failures + 1))
    fi
}

echo "== $(date +%T) install"
if $PY -c "import cupy" 2>/dev/null; then
    $PY -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.txt" 2>&1
else  # the wheel of the driver's CUDA major version: a cuda13 wheel installs on a CUDA 12 driver, then fails
    cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -n 1)
    $PY -m pip install -q -e ".[cuda${cuda:-12},dev]" > "$OUT/install.txt" 2>&1
fi
tail -n 3 "$OUT/install.txt"
$PY -m minicon info | tee "$OUT/info.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$OUT/info.txt" 2>&1

if [ -z "${MINICON_DATA_DIR:-}" ]; then  # gather the carried files into one CIFAR-10 folder
    mkdir -p /tmp/minicon-cifar/cifar-10-batches-bin
    find "$PWD/.gpudata" \( -name '*.bin' -o -name 'batches.meta.txt' \) -exec ln -sf {} /tmp/minicon-cifar/cifar-10-batches-bin/ \; 2>/dev/null
    export MINICON_DATA_DIR=/tmp/minicon-cifar
fi
if $PY -c "from minicon.data import load_cifar10; load_cifar10('$MINICON_DATA_DIR', 'train', download=False)" 2>/dev/null; then
    whole=1; echo "== data: the whole of CIFAR-10 in $MINICON_DATA_DIR"
else
    whole=0; echo "== data: only part of CIFAR-10 in $MINICON_DATA_DIR: $(ls "$MINICON_DATA_DIR/cifar-10-batches-bin" 2>/dev/null | tr '\n' ' ')"
fi
tests_env=(env MINICON_TEST_BACKENDS=cupy)
[ "$whole" -eq 1 ] || tests_env+=(-u MINICON_DATA_DIR)  # tests needing real data skip, not fail

step "tests/test_cupy.py" 150 test_cupy.txt "${tests_env[@]}" $PY -m pytest -q -p no:cacheprovider -rfs tests/test_cupy.py
step "every test's CuPy case" 100 tests_cupy_cases.txt "${tests_env[@]}" $PY -m pytest -q -p no:cacheprovider -rf \
    -k cupy --ignore=tests/test_cupy.py tests/
if [ "$whole" -eq 1 ]; then
    step "lesson 11 (MINICON_FAST=1)" 60 lesson11.txt \
        env MINICON_FAST=1 $PY benchmarks/gpu_check.py lesson lessons/11_gpu_cupy.ipynb
else
    echo "== lesson 11 not run: it loads the whole training split, which was not carried" | tee "$OUT/lesson11.txt"
fi
step "step time: minicon/CuPy vs PyTorch CUDA" 60 bench.md \
    $PY benchmarks/gpu_check.py bench --batch 512 --repeats 10
step "SimCLR preset, MoCo and CLIP on CuPy" 150 train.md \
    $PY benchmarks/gpu_check.py train --data "$MINICON_DATA_DIR" --epochs 8

echo "== $(date +%T) done: $failures failed step(s); tables and logs in $OUT"
exit "$failures"
