#!/bin/bash
# The runtime's NCCL communicator (lib/Runtime/NcclCommunicator.cpp) on a real
# GPU, a world of one rank (issue #16's GPU-ranks check), in one device call:
#   h200-nccl.sh OUT
# Builds test/Runtime/Inputs/kiln-test-nccl from the checkout (no LLVM
# needed) and all-reduces 12 and 1 Mi floats through the system's
# libnccl.so.2 and, if present, the pip wheel's; logs under OUT.
set -u
OUT=$1 SRC=$(cd "$(dirname "$0")/../.." && pwd)
export NCCL_NVLS_ENABLE=0
nvidia-smi -L
g++ -O2 -std=c++17 -I$SRC/include -I$SRC/lib -I/usr/local/cuda/include \
  $SRC/test/Runtime/Inputs/kiln-test-nccl.cpp $SRC/lib/Runtime/NcclCommunicator.cpp \
  $SRC/lib/Runtime/Communicator.cpp $SRC/lib/Runtime/CudaDriver.cpp $SRC/lib/Runtime/ThreadPool.cpp \
  -ldl -pthread -o /tmp/kiln-test-nccl || exit 1
PIPNCCL=$(python3 -c "import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], 'lib', 'libnccl.so.2'))" 2>/dev/null)
for lib in "" $PIPNCCL; do
  echo "== KILN_NCCL_LIBRARY=${lib:-(default libnccl.so.2)}"
  for n in 12 1048576; do
    KILN_NCCL_LIBRARY=$lib timeout 20 /tmp/kiln-test-nccl 0 1 $n 2>&1 | tail -4
  done
  KILN_NCCL_LIBRARY=$lib NCCL_DEBUG=INFO timeout 20 /tmp/kiln-test-nccl 0 1 4 2>&1 |
    grep -m3 'NCCL version\|Init COMPLETE\|comm 0x'
done 2>&1 | tee $OUT/nccl.log
