#!/usr/bin/env bash
# The GPU check of minicon's CuPy half: one script, under 10 minutes on one GPU.
#
#   1. installs minicon with its CUDA extra (offline: only minicon itself, when CuPy is
#      already there, as on the device machine);
#   2. runs the test suite with the CuPy backend (MINICON_TEST_BACKENDS=cupy);
#   3. runs lesson 11 at MINICON_FAST=1;
#   4. times the ConvNet and ResNet-18 steps on minicon/CuPy against PyTorch CUDA;
#   5. trains the SimCLR preset and short MoCo and CLIP runs with backend cupy on real
#      CIFAR-10, printing images/s and kNN accuracy.
#
# Tables and logs go to $OUT (default ./gpu-check). Each step has its own time limit, and
# a failing step is reported and the next one still runs; the exit status counts failures.
#
# Data: MINICON_DATA_DIR if set, else .gpudata/ in the repository root. A device call
# carries at most 64 MiB of working tree, so from here only one training file fits beside
# the test file:
#     mkdir -p .gpudata/cifar-10-batches-bin && echo /.gpudata/ >> .git/info/exclude
#     cp ../shared/data/cifar-10-batches-bin/{data_batch_1.bin,test_batch.bin,batches.meta.txt} \
#        .gpudata/cifar-10-batches-bin/
# and run it with carry [".gpudata"], command `bash benchmarks/gpu_check.sh`. With one
# training file, step 5 trains on those 10,000 images and says so, and lesson 11 (which
# loads the whole training split) reports that it cannot run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export MINICON_DATA_DIR=${MINICON_DATA_DIR:-$PWD/.gpudata}
PY=${PYTHON:-python3}
failures=0

step() {  # step NAME SECONDS LOG COMMAND...: run with a time limit, keep its output
    local name=$1 limit=$2 log=$OUT/$3
    shift 3
    echo "== $(date +%T) $name (limit ${limit}s) -> $log"
    timeout "$limit" "$@" > "$log" 2>&1
    local rc=$?
    tail -n 25 "$log"
    if [ "$rc" -ne 0 ]; then
        echo "== $name FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ', time limit'))"
        failures=$((failures + 1))
    fi
}

echo "== $(date +%T) install"
if $PY -c "import cupy" 2>/dev/null; then
    $PY -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.txt" 2>&1
else
    $PY -m pip install -q -e ".[cuda13,dev]" > "$OUT/install.txt" 2>&1 \
        || $PY -m pip install -q -e ".[cuda12,dev]" >> "$OUT/install.txt" 2>&1
fi
tail -n 3 "$OUT/install.txt"
$PY -m minicon info | tee "$OUT/info.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$OUT/info.txt" 2>&1

step "tests, CuPy backend" 240 pytest.txt \
    env MINICON_TEST_BACKENDS=cupy $PY -m pytest -q -p no:cacheprovider -rfs
step "lesson 11 (MINICON_FAST=1)" 60 lesson11.txt \
    env MINICON_FAST=1 $PY benchmarks/gpu_check.py lesson lessons/11_gpu_cupy.ipynb
step "step time: minicon/CuPy vs PyTorch CUDA" 60 bench.md \
    $PY benchmarks/gpu_check.py bench --batch 512 --repeats 10
step "SimCLR preset, MoCo and CLIP on CuPy" 180 train.md \
    $PY benchmarks/gpu_check.py train --data "$MINICON_DATA_DIR" --epochs 8

echo "== $(date +%T) done: $failures failed step(s); tables and logs in $OUT"
exit "$failures"
