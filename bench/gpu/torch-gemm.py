#!/usr/bin/env python3
"""The peers of Kiln's tensor-core GEMM (make_cases.py's bench_mma_* cases)
on the same shapes: cuBLAS fp16 (torch.matmul, x[M, K] @ w[K, N]) and
torch's int4 tinygemm kernel (torch.ops.aten._weight_int4pack_mm, bf16
activations, group 32, as bench/gpu/torch-int4-decode.py). Times as
run_cases.py --bench does: the mean of 200 back-to-back calls, weights
rotated over copies filling 256 MiB (cold in HBM).

  torch-gemm.py [--shapes 4096x4096,14336x4096,4096x14336] [--tokens 16,512]
"""
import argparse

import torch

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--shapes", default="4096x4096,14336x4096,4096x14336",
                help="N x K of the weights")
ap.add_argument("--tokens", default="16,512")
ap.add_argument("--group", type=int, default=32)
args = ap.parse_args()
dev = "cuda"
torch.manual_seed(0)


def time_us(calls):
    """Mean of 200 back-to-back calls, call i on copy i % len(calls)."""
    for c in calls[:3]:
        c()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(200):
        calls[i % len(calls)]()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / 200


print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
for shape in args.shapes.split(","):
    n, k = map(int, shape.split("x"))
    fp16 = [torch.randn(k, n, device=dev, dtype=torch.half)
            for _ in range(max(1, (1 << 28) // (2 * n * k)))]
    packed = []
    for _ in range(max(1, (1 << 28) // (n * k // 2))):
        codes = torch.randint(0, 16, (n, k), dtype=torch.int32, device=dev)
        w = torch.ops.aten._convert_weight_to_int4pack(
            (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8), 8)
        sz = torch.stack([torch.rand(k // args.group, n, device=dev) * 2e-3 + 1e-3,
                          torch.zeros(k // args.group, n, device=dev)], dim=2)
        packed.append((w, sz.to(torch.bfloat16).contiguous()))
        del codes
    for t in map(int, args.tokens.split(",")):
        xh = torch.randn(t, k, device=dev, dtype=torch.half)
        xb = xh.to(torch.bfloat16)
        cublas = time_us([lambda w=w: torch.matmul(xh, w) for w in fp16])
        tiny = time_us([lambda p=p: torch.ops.aten._weight_int4pack_mm(xb, p[0], args.group, p[1])
                        for p in packed])
        flop = 2 * t * n * k
        print(f"  {n}x{k} M={t}: cuBLAS fp16 {cublas:.1f} us ({flop / cublas / 1e6:.1f} TFLOP/s), "
              f"tinygemm int4 g{args.group} {tiny:.1f} us ({flop / tiny / 1e6:.1f} TFLOP/s)")
    del fp16, packed
    torch.cuda.empty_cache()
