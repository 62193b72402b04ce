"""Bitmap-compressed Q4_0 and Q8_0 weights, written from the description in
dialects/Kiln/IR/WeightLayout.h (bitmapWeightBytes), not from
PackWeights.cpp, to check kiln-pack-weights byte for byte.

    bitmap_reference.py make > INPUT.mlir       a module of pruned weights
    bitmap_reference.py check INPUT.mlir < OUTPUT.mlir

`make` writes random Q4_0 and Q8_0 blocks with about half (or a quarter) of
the codes zero, as dense_resource blobs marked `#kiln.sparsity<kind = bitmap,
nnz = N, dense = true>`. `check` compresses each with Python loops and
compares the blob OUTPUT's bitmap weight of the same shape and bits holds;
one line per weight, non-zero exit on a difference or a weight left dense.
"""
import re
import struct
import sys

import numpy as np

# ggml blocks' codes, a module of weights, and the dialect_resources of one.
from nm_reference import codes_of, print_module, read_modules, run

# (name, rows, K, bits, share of zeros)
WEIGHTS = [("q4_0_unstructured", 32, 96, 4, 0.5), ("q8_0_unstructured", 16, 128, 8, 0.5),
           ("q4_0_sparser", 16, 64, 4, 0.75)]


def source_blocks(rng, n, k, bits, rate):
    blocks = []
    for _ in range(n * k // 32):
        d = np.array([rng.uniform(0.01, 0.1)], "<f2").view(np.uint8)
        if bits == 8:
            codes = rng.integers(-127, 128, 32).astype(np.int8).view(np.uint8)
            codes[rng.random(32) < rate] = 0
            qs = codes
        else:
            codes = rng.integers(0, 16, 32).astype(np.uint8)
            codes[rng.random(32) < rate] = 8
            qs = (codes[:16] | (codes[16:] << 4)).astype(np.uint8)
        blocks.append(np.concatenate([d, qs]))
    return np.concatenate(blocks)


def compress(source, n, k, bits):
    """WeightLayout.h: rows/16 u64 group offsets; per group of 16 rows, per
    32-value block, the 16 f16 scales, 8 u64 plane masks (bit 4r+v of plane
    t: row r keeps value 4t+v), then per plane and quarter (rows 4q..4q+3)
    the kept codes in mask order (Q8_0 bytes; Q4_0 nibbles, low first, an
    even count per quarter: the first zero code kept when odd); 16 bytes of
    padding. Returns the bytes and the count of kept codes."""
    src_bytes = 2 + 32 * bits // 8
    blocks = k // 32
    src = np.frombuffer(source, np.uint8).reshape(n, blocks, src_bytes)
    groups = bytearray()
    offsets = []
    stored = 0
    for g in range(n // 16):
        offsets.append(n // 16 * 8 + len(groups))
        for blk in range(blocks):
            scales, masks, kept = bytearray(), [0] * 8, bytearray()
            values, zero = [], 0
            for r in range(16):
                block = src[16 * g + r, blk]
                scales += bytes(block[:2])
                v, zero = codes_of(block, bits)
                values.append(v)
            for t in range(8):
                for q in range(4):
                    keep = [(values[4 * q + bit // 4][4 * t + bit % 4] != zero) for bit in range(16)]
                    if bits == 4 and sum(keep) % 2:
                        keep[keep.index(False)] = True
                    nibbles = []
                    for bit in range(16):
                        if keep[bit]:
                            masks[t] |= 1 << (16 * q + bit)
                            code = values[4 * q + bit // 4][4 * t + bit % 4]
                            if bits == 8:
                                kept.append(code)
                            else:
                                nibbles.append(code)
                            stored += 1
                    for i in range(0, len(nibbles), 2):
                        kept.append(nibbles[i] | (nibbles[i + 1] << 4))
            groups += scales + b"".join(struct.pack("<Q", m) for m in masks) + kept
    out = b"".join(struct.pack("<Q", o) for o in offsets) + bytes(groups) + bytes(16)
    return out, stored


def make():
    rng = np.random.default_rng(11)
    weights = []
    for name, n, k, bits, rate in WEIGHTS:
        raw = source_blocks(rng, n, k, bits, rate)
        nnz = sum(int(np.count_nonzero(codes != z)) for codes, z in
                  (codes_of(raw[i:i + 2 + 32 * bits // 8], bits)
                   for i in range(0, len(raw), 2 + 32 * bits // 8)))
        wt = ("!kiln.weight<%dx%dx#kiln.quant<bits = %d, group = 32, scale = f16, layout = gguf>, "
              "sparsity = #kiln.sparsity<kind = bitmap, nnz = %d, dense = true>>") % (n, k, bits, nnz)
        weights.append((name, n, k, raw, wt))
    print_module(weights)


def check(source_path):
    source_text, packed_text, sources, packed = read_modules(source_path)
    weight = re.compile(r'func\.func @(\w+)\(.*?kiln\.weight dense_resource<(\w+)> : tensor<\d+xi8> -> '
                        r'!kiln\.weight<(\d+)x(\d+)x#kiln\.quant<bits = (\d), group = 32, scale = f16, '
                        r'layout = gguf>, sparsity = #kiln\.sparsity<kind = bitmap, nnz = (\d+)(, dense = true)?>>',
                        re.S)
    outputs = {fn: (packed[blob], int(nnz), dense) for fn, blob, n, k, b, nnz, dense in weight.findall(packed_text)}
    failed = not sources
    for fn, blob, n, k, b, nnz, dense in weight.findall(source_text):
        expected, stored = compress(sources[blob], int(n), int(k), int(b))
        got = outputs.get(fn)
        if not got or got[2]:
            failed = True
            print("%s: left dense" % fn)
        elif got[0] != expected or got[1] != stored:
            failed = True
            print("%s: bitmap bytes differ from the reference" % fn)
        else:
            print("%s: %d bitmap bytes match, nnz %d (%d dense)" % (fn, len(expected), stored, len(sources[blob])))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run(make, check)
