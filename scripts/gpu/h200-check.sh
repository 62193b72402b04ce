#!/bin/bash
# The GPU checks of Kiln issue #15 in one device call (a lent H200):
#   h200-check.sh DIR OUT
# DIR (carried) holds kernels/ (scripts/gpu-kernel-tests/make_cases.py),
# and, optionally, model.cuda.kiln and ref.bin (bench/gpu/greedy-logits.c's output for the
# same model compiled for the CPU with --activations=f32, run here). Builds
# the runtime alone (lib/Runtime/standalone: no LLVM there), runs every
# kernel case against its float64 reference, then greedy decoding on the GPU
# against ref.bin, the decode rate and kiln-run --bench. Logs under OUT.
set -u
DIR=$1 OUT=$2 SRC=$(cd "$(dirname "$0")/../.." && pwd)
PROMPT="The capital of France is"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
cmake -S $SRC/lib/Runtime/standalone -B /tmp/rtb -G Ninja -DCMAKE_BUILD_TYPE=Release \
  >$OUT/cmake.log 2>&1 && ninja -C /tmp/rtb >$OUT/build.log 2>&1 ||
  { tail -20 $OUT/cmake.log $OUT/build.log; exit 1; }
ctest --test-dir /tmp/rtb --output-on-failure 2>&1 | tail -3
echo "== kernel cases (each in its own process)"
python3 $SRC/scripts/gpu-kernel-tests/run_each.py $DIR/kernels 2>&1 | tee $OUT/kernel-cases.log
R=/tmp/rtb/bin
# Kernel cases alone when no model was carried.
[ -f $DIR/model.cuda.kiln ] || exit 0
echo "== kiln-run greedy on cuda"
$R/kiln-run -m $DIR/model.cuda.kiln -p "$PROMPT" -n 16 --temp 0 --device cuda 2>&1 | tail -4
echo "== greedy logits against the CPU (f32 activations)"
$R/kiln-greedy-logits $DIR/model.cuda.kiln cuda "$PROMPT" 16 $OUT/cuda-logits.bin &&
  python3 $SRC/bench/gpu/compare-logits.py $DIR/ref.bin $OUT/cuda-logits.bin | tee $OUT/compare.log
echo "== decode rate (median of 5)"
$R/kiln-greedy-logits $DIR/model.cuda.kiln cuda "$PROMPT" 128 /tmp/decode.bin 5 | tail -2
echo "== kiln-run --bench"
$R/kiln-run -m $DIR/model.cuda.kiln --bench -p 512 -n 128 -r 3 --device cuda 2>&1 | tail -5
