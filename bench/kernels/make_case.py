"""Writes one kernel-benchmark case: random valid GGUF blocks for an N x K
weight (the same bytes feed Kiln and ggml) and a one-op kiln module
(kiln.linear over them, up to 512 tokens) for kiln-compile --emit=so.

Usage: make_case.py TYPE N K DIR [pruned|sparse]   (TYPE: q4_0 q4_k q6_k q8_0)
Writes DIR/weights.bin and DIR/linear.mlir.

`pruned` (Q4_0, Q8_0): in every run of 4 values along K, 2 random ones get
the zero code (2:4 sparsity), the weight type does not say so: kiln-compile
packs it dense. `sparse`: the same bytes, marked `#kiln.sparsity<n_m 2:4,
dense = true>` as kiln-prune leaves a weight: kiln-compile stores it
compressed for the sparse kernels.
"""
import os
import sys

import numpy as np

# (block values, block bytes, offsets of f16 scale fields, kiln scheme)
TYPES = {
    "q4_0": (32, 18, [0], "#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>"),
    "q8_0": (32, 34, [0], "#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>"),
    "q4_k": (256, 144, [0, 2], "#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, "
             "super_group = 256, sub_scale_bits = 6, layout = gguf>"),
    "q6_k": (256, 210, [208], "#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, "
             "sub_scale_bits = 8, layout = gguf>"),
}


def prune_2_4(blocks, typ, rng):
    """Writes the zero code over 2 random values of each run of 4 (in place)."""
    runs = blocks.shape[0] * 8
    pruned = np.argsort(rng.random((runs, 4)), axis=1)[:, :2]
    drop = np.zeros((runs, 4), dtype=bool)
    np.put_along_axis(drop, pruned, True, axis=1)
    drop = drop.reshape(-1, 32)
    if typ == "q8_0":
        codes = blocks[:, 2:].view(np.int8)
        codes[drop] = 0
        return
    assert typ == "q4_0", "pruned cases are Q4_0 or Q8_0"
    # ggml's Q4_0: byte i holds value i (low nibble) and value i + 16 (high).
    qs = blocks[:, 2:]
    lo, hi = qs & 15, qs >> 4
    lo[drop[:, :16]] = 8
    hi[drop[:, 16:]] = 8
    qs[:] = lo | (hi << 4)


def main():
    typ, n, k, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    block, nbytes, f16_fields, scheme = TYPES[typ]
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (n * k // block, nbytes), dtype=np.uint8)
    for off in f16_fields:
        d = rng.uniform(0.002, 0.02, len(blocks)).astype("<f2")
        blocks[:, off:off + 2] = d.view(np.uint8).reshape(-1, 2)
    prune = sys.argv[5] if len(sys.argv) > 5 else None
    if prune:
        prune_2_4(blocks, typ, rng)
    os.makedirs(out, exist_ok=True)
    blocks.tofile(os.path.join(out, "weights.bin"))
    sparsity = ", sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>" if prune == "sparse" else ""
    wt = "!kiln.weight<%dx%dx%s%s>" % (n, k, scheme, sparsity)
    with open(os.path.join(out, "linear.mlir"), "w") as f:
        f.write(
            "func.func @linear(%%x: tensor<?x%dxf32>) -> tensor<?x%dxf32> "
            "attributes {kiln.max_tokens = 512} {\n"
            "  %%w = kiln.weight #kiln.external<\"weights.bin\", offset = 0, size = %d> -> %s\n"
            "  %%y = kiln.linear %%x, %%w : tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
            "  return %%y : tensor<?x%dxf32>\n}\n" % (k, n, blocks.size, wt, k, wt, n, n))


if __name__ == "__main__":
    main()
