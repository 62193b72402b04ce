#!/bin/bash
# A whole cuda artifact on a lent H200 when it is larger than one call may
# carry (64 MiB): split it here (split -b 50M MODEL.cuda.kiln DIR/part.),
# then one call per part while the machine stays warm, the last one running it:
#   h200-model.sh part FILE              keep FILE in /tmp/kiln-parts (the first
#                                        call also builds the runtime there)
#   h200-model.sh run SHA256 REF OUT     join the parts in name order, check the
#                                        sum, greedy-decode 16 tokens with
#                                        kiln-run, compare the logits with REF
#                                        (bench/gpu/greedy-logits.c run here on
#                                        the CPU artifact compiled with
#                                        --activations=f32), time decoding
#                                        (median of 5) and kiln-run --bench
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PROMPT="The capital of France is"
build() {
  [ -x /tmp/rtb/bin/kiln-run ] && return 0
  cmake -S $SRC/lib/Runtime/standalone -B /tmp/rtb -G Ninja -DCMAKE_BUILD_TYPE=Release \
    >/tmp/rtb-cmake.log 2>&1 && ninja -C /tmp/rtb >/tmp/rtb-build.log 2>&1 ||
    { tail -20 /tmp/rtb-cmake.log /tmp/rtb-build.log; exit 1; }
}
case $1 in
part)
  mkdir -p /tmp/kiln-parts && cp "$2" /tmp/kiln-parts/ && ls -l /tmp/kiln-parts
  build
  ;;
run)
  SUM=$2 REF=$3 OUT=$4
  build
  cat /tmp/kiln-parts/* > /tmp/model.kiln
  echo "$SUM  /tmp/model.kiln" | sha256sum -c || { ls -l /tmp/kiln-parts; exit 1; }
  R=/tmp/rtb/bin
  echo "== kiln-run greedy on cuda"
  $R/kiln-run -m /tmp/model.kiln -p "$PROMPT" -n 16 --temp 0 --device cuda 2>&1 | tee $OUT/kiln-run.log
  echo "== greedy logits vs the CPU artifact"
  $R/kiln-greedy-logits /tmp/model.kiln cuda "$PROMPT" 16 $OUT/cuda-logits.bin &&
    python3 $SRC/bench/gpu/compare-logits.py $REF $OUT/cuda-logits.bin | tee $OUT/compare.log
  echo "== decode rate (median of 5, 128 tokens)"
  $R/kiln-greedy-logits /tmp/model.kiln cuda "$PROMPT" 128 /tmp/decode.bin 5 | tail -2
  echo "== kiln-run --bench"
  $R/kiln-run -m /tmp/model.kiln --bench -p 512 -n 128 -r 3 --device cuda 2>&1 | tail -5
  ;;
esac
