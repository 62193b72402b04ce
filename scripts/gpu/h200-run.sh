#!/bin/bash
# The GPU checks of Kiln issue #15 on a lent H200, in two calls because the
# SmolLM2 cuda artifact (99 MB) is larger than one call may carry:
#   h200-run.sh kernels SRC KERNELS PART1 OUT  build the runtime (standalone), run the
#                                              gpu-compiler kernel cases with --bench,
#                                              keep PART1 of the artifact in /tmp/kiln-parts
#   h200-run.sh model SRC PART2 REF OUT        join the artifact, generate greedily with
#                                              kiln-run, compare logits with REF (the CPU
#                                              artifact's, from bench/gpu/greedy-logits.c
#                                              run here), time decoding (median of 5)
# SRC is a copy of the source tree (lib/Runtime, include, tools/kiln-run, bench/gpu,
# test/Runtime/Inputs, lib/Compiler/ArtifactWriter.*). Results in OUT and on stdout.
set -u
phase=$1 SRC=$2
PROMPT="The capital of France is"

build() {
  [ -x /tmp/rtb/bin/kiln-run ] && return 0
  cmake -S $SRC/lib/Runtime/standalone -B /tmp/rtb -G Ninja -DCMAKE_BUILD_TYPE=Release \
    >$OUT/cmake.log 2>&1 && ninja -C /tmp/rtb >$OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
  ctest --test-dir /tmp/rtb --output-on-failure 2>&1 | tail -3
}

if [ "$phase" = kernels ]; then
  KERNELS=$3 PART1=$4 OUT=$5
  mkdir -p /tmp/kiln-parts && cp $PART1 /tmp/kiln-parts/part1 &
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
  # The roofline's bandwidth: a 1 GiB device-to-device copy (read + write).
  python3 - <<'PY' 2>&1 | tee $OUT/copy.log
import torch
a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
t = []
for _ in range(20):
    s.record(); b.copy_(a); e.record(); e.synchronize(); t.append(s.elapsed_time(e))
t.sort(); print(f"copy 1 GiB: {2 * (1 << 30) / t[10] / 1e6:.0f} GB/s (median of 20)")
PY
  build
  # Each case in its own process: a crash in one (seen 16:05 UTC at
  # gemv_f32_1536x576_t3, no message) must not hide the others.
  python3 - $KERNELS <<'PY' 2>&1 | tee $OUT/kernel-cases.log
import json, subprocess, sys, os, tempfile
root = sys.argv[1]
cases = json.load(open(os.path.join(root, "cases.json")))
for case in cases:
    d = tempfile.mkdtemp()
    json.dump([case], open(os.path.join(d, "cases.json"), "w"))
    for f in os.listdir(root):
        if f.startswith(case["name"] + "."):
            os.symlink(os.path.join(root, f), os.path.join(d, f))
    r = subprocess.run([sys.executable, os.path.join(root, "run_cases.py"), d, "--bench"],
                       capture_output=True, text=True)
    lines = [l for l in (r.stdout + r.stderr).splitlines() if "cases pass" not in l]
    print("\n".join(lines[-6:]) if lines else "", end="")
    print("" if r.returncode >= 0 else f"CRASH {case['name']}: signal {-r.returncode}")
PY
  wait
  ls -l /tmp/kiln-parts
elif [ "$phase" = model ]; then
  PART2=$3 REF=$4 OUT=$5
  build
  [ -f /tmp/kiln-parts/part1 ] || { echo "part 1 is gone (the machine was not kept warm)"; exit 1; }
  cat /tmp/kiln-parts/part1 $PART2 > /tmp/model.kiln && sha256sum /tmp/model.kiln
  R=/tmp/rtb/bin
  echo "== kiln-run greedy on cuda"
  $R/kiln-run -m /tmp/model.kiln -p "$PROMPT" -n 16 --temp 0 --device cuda 2>&1 | tee $OUT/kiln-run.log
  if grep -q "error" $OUT/kiln-run.log; then
    echo "== again with KILN_CUDA_SYNC_LAUNCHES=1"
    KILN_CUDA_SYNC_LAUNCHES=1 $R/kiln-run -m /tmp/model.kiln -p "$PROMPT" -n 4 --temp 0 2>&1 | tail -3
    exit 1
  fi
  echo "== greedy logits vs the CPU artifact"
  $R/kiln-greedy-logits /tmp/model.kiln cuda "$PROMPT" 16 $OUT/cuda-logits.bin
  python3 $SRC/bench/gpu/compare-logits.py $REF $OUT/cuda-logits.bin | tee $OUT/compare.log
  # Decode as one CUDA graph per step (the default), then kernel by kernel.
  for graphs in 1 0; do
    echo "== decode rate, KILN_CUDA_GRAPHS=$graphs"
    KILN_CUDA_GRAPHS=$graphs $R/kiln-greedy-logits /tmp/model.kiln cuda "$PROMPT" 128 /tmp/decode.bin 5
    echo "== kiln-run --bench, KILN_CUDA_GRAPHS=$graphs"
    KILN_CUDA_GRAPHS=$graphs $R/kiln-run -m /tmp/model.kiln --bench -p 512 -n 128 -r 3 --device cuda 2>&1 | tail -5
  done
fi
