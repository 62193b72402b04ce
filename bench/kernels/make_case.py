"""Writes one kernel-benchmark case: random valid GGUF blocks for an N x K
weight (the same bytes feed Kiln and ggml) and a one-op kiln module
(kiln.linear over them, up to 512 tokens) for kiln-compile --emit=so.

Usage: make_case.py TYPE N K DIR [pruned|sparse|unstructured[=R]|bitmap[=R]]
(TYPE: a key of TYPES; pB: Kiln's packed layout at B bits, no ggml twin)
Writes DIR/weights.bin and DIR/linear.mlir.

`pruned` (Q4_0, Q8_0): in every run of 4 values along K, 2 random ones get
the zero code (2:4 sparsity), the weight type does not say so: kiln-compile
packs it dense. `sparse`: the same bytes, marked `#kiln.sparsity<n_m 2:4,
dense = true>` as kiln-prune leaves a weight: kiln-compile stores it
compressed for the sparse kernels. `unstructured=R` (default 0.5): a
random share R of all values gets the zero code, the type does not say so;
`bitmap=R`: the same bytes marked `#kiln.sparsity<kind = bitmap, nnz = ...,
dense = true>` as kiln-prune pattern=unstructured leaves a weight.
"""
import os
import sys

import numpy as np

# (block values, block bytes, offsets of f16 scale fields, kiln scheme)
TYPES = {
    "q4_0": (32, 18, [0], "#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>"),
    "q8_0": (32, 34, [0], "#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>"),
    "q2_k": (256, 84, [80, 82], "#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, "
             "super_group = 256, sub_scale_bits = 4, layout = gguf>"),
    "q3_k": (256, 110, [108], "#kiln.quant<bits = 3, group = 16, scale = f16, super_group = 256, "
             "sub_scale_bits = 6, layout = gguf>"),
    "q4_k": (256, 144, [0, 2], "#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, "
             "super_group = 256, sub_scale_bits = 6, layout = gguf>"),
    "iq4_nl": (32, 18, [0], "#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl>"),
    "iq4_xs": (256, 136, [0], "#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256, "
               "sub_scale_bits = 6, layout = gguf, codebook = iq4_nl>"),
    "q6_k": (256, 210, [208], "#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, "
             "sub_scale_bits = 8, layout = gguf>"),
    "tq2_0": (256, 66, [64], "#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, codebook = ternary>"),
    "tq1_0": (256, 54, [52], "#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, "
              "codebook = ternary_base3>"),
    "iq2_xxs": (256, 66, [0], "#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, "
                "sub_scale_bits = 4, layout = gguf, codebook = iq2_xxs>"),
    "iq3_xxs": (256, 98, [0], "#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, "
                "sub_scale_bits = 4, layout = gguf, codebook = iq3_xxs>"),
    "iq2_xs": (256, 74, [0], "#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, "
               "sub_scale_bits = 4, layout = gguf, codebook = iq2_xs>"),
    "iq3_s": (256, 110, [0], "#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, "
              "sub_scale_bits = 4, layout = gguf, codebook = iq3_s>"),
    "iq2_s": (256, 82, [0], "#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, "
              "sub_scale_bits = 4, layout = gguf, codebook = iq2_s>"),
    "iq1_s": (256, 50, [0], "#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, "
              "sub_scale_bits = 3, layout = gguf, codebook = iq1_s>"),
    # No d field: its nibbles go to the scale words (main).
    "iq1_m": (256, 56, [], "#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, "
              "sub_scale_bits = 3, layout = gguf, codebook = iq1_m>"),
}
# Kiln's own packed layout (Dequant.h) at every width, groups of 32 with an
# f16 scale (symmetric): no ggml twin, Kiln alone against the roofline.
for _bits in range(2, 9):
    TYPES["p%d" % _bits] = (32, 2 + 4 * _bits, [0], "#kiln.quant<bits = %d, group = 32, scale = f16>" % _bits)


def zero_codes(blocks, typ, drop):
    """Writes the zero code over the values `drop` ([blocks, 32] booleans)
    marks (in place); returns the count of non-zero codes left."""
    if typ == "q8_0":
        codes = blocks[:, 2:].view(np.int8)
        codes[drop] = 0
        return int(np.count_nonzero(codes))
    assert typ == "q4_0", "pruned cases are Q4_0 or Q8_0"
    # ggml's Q4_0: byte i holds value i (low nibble) and value i + 16 (high).
    qs = blocks[:, 2:]
    lo, hi = qs & 15, qs >> 4
    lo[drop[:, :16]] = 8
    hi[drop[:, 16:]] = 8
    qs[:] = lo | (hi << 4)
    return int(np.count_nonzero(lo != 8) + np.count_nonzero(hi != 8))


def prune_2_4(blocks, typ, rng):
    """Writes the zero code over 2 random values of each run of 4 (in place)."""
    runs = blocks.shape[0] * 8
    pruned = np.argsort(rng.random((runs, 4)), axis=1)[:, :2]
    drop = np.zeros((runs, 4), dtype=bool)
    np.put_along_axis(drop, pruned, True, axis=1)
    zero_codes(blocks, typ, drop.reshape(-1, 32))


def prune_unstructured(blocks, typ, rate, rng):
    """Writes the zero code over a random share `rate` of all values (in
    place); returns the count of non-zero codes left."""
    return zero_codes(blocks, typ, rng.random((blocks.shape[0], 32)) < rate)


def main():
    typ, n, k, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    block, nbytes, f16_fields, scheme = TYPES[typ]
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (n * k // block, nbytes), dtype=np.uint8)
    for off in f16_fields:
        d = rng.uniform(0.002, 0.02, len(blocks)).astype("<f2")
        blocks[:, off:off + 2] = d.view(np.uint8).reshape(-1, 2)
    if typ == "iq1_m":
        # IQ1_M's f16 d: nibble i is the top nibble of u16 scale word i (byte 48).
        bits = rng.uniform(0.002, 0.02, len(blocks)).astype("<f2").view("<u2")
        words = blocks[:, 48:56].copy().view("<u2")
        for i in range(4):
            words[:, i] = (words[:, i] & 0x0FFF) | (((bits >> (4 * i)) & 0xF) << 12)
        blocks[:, 48:56] = words.view(np.uint8)
    prune, _, rate = (sys.argv[5] if len(sys.argv) > 5 else "").partition("=")
    sparsity = ""
    if prune in ("pruned", "sparse"):
        prune_2_4(blocks, typ, rng)
        if prune == "sparse":
            sparsity = ", sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>"
    elif prune in ("unstructured", "bitmap"):
        nnz = prune_unstructured(blocks, typ, float(rate or 0.5), rng)
        if prune == "bitmap":
            sparsity = ", sparsity = #kiln.sparsity<kind = bitmap, nnz = %d, dense = true>" % nnz
    elif prune:
        sys.exit("make_case.py: unknown pruning " + prune)
    os.makedirs(out, exist_ok=True)
    blocks.tofile(os.path.join(out, "weights.bin"))
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
