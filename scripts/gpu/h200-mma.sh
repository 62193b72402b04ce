#!/bin/bash
# The tensor-core GEMM of Kiln issue #15 (LinearMma.cpp) in one device call:
#   h200-mma.sh DIR OUT
# DIR (carried) holds kernels/ (make_cases.py --only mma_,bench_mma_: the
# GEMM cases with float64 references, and the 8B shapes for --bench) and,
# optionally, big/ (bench/gpu/big-model prepare, compiled with the GEMM).
# Runs each case in its own process (a faulting kernel cannot spoil the
# next), then torch's cuBLAS fp16 and tinygemm int4 on the benched shapes,
# then, with big/, kiln-run --bench of the 8B-shaped Q4_0 model (pp512,
# tg128; the runtime builds meanwhile). Logs under OUT.
set -u
DIR=$1 OUT=$2 SRC=$(cd "$(dirname "$0")/../.." && pwd)
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
if [ -d $DIR/big ]; then
  (cmake -S $SRC/lib/Runtime/standalone -B /tmp/rtb -G Ninja -DCMAKE_BUILD_TYPE=Release \
     >$OUT/cmake.log 2>&1 && ninja -C /tmp/rtb >$OUT/build.log 2>&1; echo $? >$OUT/build.rc) &
  (xz -dc $DIR/big/model.cuda.kiln.xz >/tmp/big-model.cuda.kiln) &
fi
echo "== GEMM cases (each in its own process; bench_ cases timed)"
python3 $SRC/scripts/gpu-kernel-tests/run_each.py $DIR/kernels 2>&1 | tee $OUT/mma-cases.log
echo "== peers: cuBLAS fp16, tinygemm int4"
python3 $SRC/bench/gpu/torch-gemm.py 2>&1 | tee $OUT/torch-gemm.log
[ -d $DIR/big ] || exit 0
wait
[ "$(cat $OUT/build.rc)" = 0 ] || { tail -20 $OUT/cmake.log $OUT/build.log; exit 1; }
echo "== 8B-shaped Q4_0: kiln-run --bench (pp512 was 145.6 tokens/s on the GEMV)"
/tmp/rtb/bin/kiln-run -m /tmp/big-model.cuda.kiln --bench -p 512 -n 128 -r 3 --device cuda 2>&1 |
  tee $OUT/kiln-bench.log | tail -4
