#!/bin/bash
# First look at a lent GPU machine: what is installed, whether the runtime
# builds there (lib/Runtime/standalone), and the device-to-device copy
# bandwidth (the ceiling GEMV bandwidth is compared with).
# Usage (from the checkout the device receives): scripts/gpu/h200-probe.sh SRC JSON_DIR OUT
SRC=$1 JSON=$2 OUT=${3:-/tmp/out}
set -x
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
nvcc --version | tail -1; cmake --version | head -1; ninja --version; c++ --version | head -1
ldd --version | head -1; ls /usr/include/nlohmann 2>&1 | head -2; ls -l /usr/lib/x86_64-linux-gnu/libcuda.so* /usr/local/nvidia/lib64/libcuda.so* 2>&1
nproc; free -g | head -2
set +x
cmake -S $SRC/lib/Runtime/standalone -B /tmp/rtb -G Ninja -DKILN_JSON_INCLUDE_DIR=$JSON >$OUT/cmake.log 2>&1 \
  && ninja -C /tmp/rtb >$OUT/build.log 2>&1 && ctest --test-dir /tmp/rtb --output-on-failure 2>&1 | tail -5
echo "build rc=$?"; tail -3 $OUT/build.log
python3 - <<'PY'
import torch
x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
x.random_(0, 255)
for _ in range(3): y.copy_(x)
ts = []
for _ in range(20):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record(); y.copy_(x); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
ts.sort(); ms = ts[len(ts)//2]
print(f"copy 1 GiB d2d: median {ms:.3f} ms, {2*(1<<30)/ms/1e6:.0f} GB/s (read+write)")
PY
