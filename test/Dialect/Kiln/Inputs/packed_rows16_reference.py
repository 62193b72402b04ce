"""Kiln's packed layout (Dequant.h) in the rows16 layout, written from the
description in lib/Conversion/KilnToCPU/IR/Rows16.h (not from Rows16.cpp),
to check kiln-pack-weights{target=cpu} byte for byte.

    packed_rows16_reference.py make > INPUT.mlir
    packed_rows16_reference.py check INPUT.mlir < OUTPUT.mlir

`make` writes random packed weights at every width 2..8, groups of 32 to
128, f16, bf16 and f32 scales, symmetric and with each float zero type.
`check` rearranges each with numpy and compares the blob OUTPUT's weight of
the same function holds; one line per weight, non-zero exit on a difference
or a weight left in its packed layout.
"""
import re
import sys

import numpy as np

from nm_reference import print_module, read_modules, run

ROWS = 16
FLOAT_BYTES = {"f16": 2, "bf16": 2, "f32": 4}

# (bits, group, scale type, zero type or None, rows, K)
WEIGHTS = [(2, 32, "f16", None, 32, 64), (2, 64, "bf16", "f16", 16, 128),
           (3, 32, "f32", "f32", 16, 96), (3, 128, "bf16", "bf16", 32, 256),
           (4, 64, "f16", "bf16", 16, 128), (5, 32, "bf16", None, 16, 64),
           (5, 64, "f16", "f32", 16, 128), (6, 32, "f32", None, 32, 64),
           (6, 128, "f16", "f16", 16, 128), (7, 32, "f16", None, 16, 96),
           (7, 64, "bf16", "f16", 32, 128), (8, 32, "bf16", "bf16", 16, 64)]


def name_of(bits, group, scale, zero):
    return "p%dg%d_%s%s" % (bits, group, scale, "_z" + zero if zero else "")


def scheme(bits, group, scale, zero):
    return "bits = %d, group = %d, scale = %s%s" % (bits, group, scale, ", zero = " + zero if zero else "")


def source_groups(rng, n, k, bits, group, scale, zero):
    """Random rows of packed groups: scale, [zero], codes LSB first."""
    field = FLOAT_BYTES[scale] + (FLOAT_BYTES[zero] if zero else 0)
    out = rng.integers(0, 256, n * (k // group) * (field + group * bits // 8)).astype(np.uint8)
    return out


def rows16(source, n, k, bits, group, scale, zero):
    """Rows16.h: per group of 16 rows, a header per super-block (one packed
    group): the 16 rows' scales, then their zeros, each in its stored type
    (padded to 64 bytes over all super-blocks); then per 32-value block the
    code planes, bytes [4r, 4r + 4) of a plane for row r, target t = values
    4t..4t+3: 2-bit planes (plane t / 4, bits 2 (t % 4)), nibble planes
    (plane j: target j low, target j + 4 high), one-bit planes (bit t of a
    byte = target t); width 3: three planes, plane t // 2 bits 3 (t % 2)..
    3 (t % 2) + 2 = target t for t < 6, targets 6 and 7 bits 0..1 in bits
    6..7 of planes 0 and 1, bit 2 in bits 6 and 7 of plane 2; 5: one-bit plane of bit 4 then nibbles; 6: two 2-bit planes of
    bits 4..5 then nibbles; 7: one-bit plane of bit 6, two planes of bits
    4..5, nibbles."""
    sb, zb = FLOAT_BYTES[scale], FLOAT_BYTES[zero] if zero else 0
    supers = k // group
    src = np.frombuffer(source, np.uint8).reshape(n, supers, -1)
    header_bytes = ROWS * (sb + zb)
    header_region = (supers * header_bytes + 63) // 64 * 64
    blocks = k // 32
    out = np.zeros(((n + ROWS - 1) // ROWS, header_region + blocks * 64 * bits), np.uint8)
    for row in range(n):
        g, r = divmod(row, ROWS)
        for s in range(supers):
            rec = src[row, s]
            h = s * header_bytes
            out[g, h + sb * r:h + sb * (r + 1)] = rec[:sb]
            if zero:
                out[g, h + ROWS * sb + zb * r:h + ROWS * sb + zb * (r + 1)] = rec[sb:sb + zb]
            stream = np.unpackbits(rec[sb + zb:], bitorder="little")
            codes = [int(sum(int(stream[i * bits + b]) << b for b in range(bits)))
                     for i in range(group)]
            for j in range(group // 32):
                blk = s * group // 32 + j
                planes = out[g, header_region + blk * 64 * bits:header_region + (blk + 1) * 64 * bits]
                for v in range(32):
                    c, t, at = codes[32 * j + v], v // 4, 4 * r + v % 4
                    if bits == 8:
                        planes[64 * t + at] = c
                        continue
                    if bits == 2:
                        planes[64 * (t // 4) + at] |= c << (2 * (t % 4))
                        continue
                    if bits == 3:
                        if t < 6:
                            planes[64 * (t // 2) + at] |= c << (3 * (t % 2))
                        else:
                            planes[64 * (t - 6) + at] |= (c & 3) << 6
                            planes[128 + at] |= (c >> 2) << t
                        continue
                    nibbles = 64 * (bits - 4)
                    planes[nibbles + 64 * (t % 4) + at] |= (c & 15) << (4 * (t // 4))
                    if bits == 5:
                        planes[at] |= ((c >> 4) & 1) << t
                    if bits >= 6:
                        high = 64 if bits == 7 else 0
                        planes[high + 64 * (t // 4) + at] |= ((c >> 4) & 3) << (2 * (t % 4))
                    if bits == 7:
                        planes[at] |= ((c >> 6) & 1) << t
    return out.tobytes()


def make():
    rng = np.random.default_rng(5)
    weights = []
    for bits, group, scale, zero, n, k in WEIGHTS:
        raw = source_groups(rng, n, k, bits, group, scale, zero)
        wt = "!kiln.weight<%dx%dx#kiln.quant<%s>>" % (n, k, scheme(bits, group, scale, zero))
        weights.append((name_of(bits, group, scale, zero), n, k, raw, wt))
    print_module(weights)


def check(source_path):
    source_text, packed_text, sources, packed = read_modules(source_path)
    weight = re.compile(r'func\.func @(\w+)\(.*?kiln\.weight dense_resource<(\w+)> : tensor<\d+xi8> -> '
                        r'!kiln\.weight<(\d+)x(\d+)x#kiln\.quant<bits = (\d), group = (\d+), '
                        r'scale = (\w+)(?:, zero = (\w+))?(, target_layout = #kiln_cpu\.rows16)?>>', re.S)
    outputs = {fn: (packed[blob], layout) for fn, blob, *_, layout in weight.findall(packed_text)}
    failed = not sources
    for fn, blob, n, k, bits, group, scale, zero, _ in weight.findall(source_text):
        expected = rows16(sources[blob], int(n), int(k), int(bits), int(group), scale, zero or None)
        got = outputs.get(fn)
        if not got or not got[1]:
            failed = True
            print("%s: left in the packed layout" % fn)
        elif got[0] != expected:
            failed = True
            print("%s: rows16 bytes differ from the reference" % fn)
        else:
            print("%s: %d rows16 bytes match" % (fn, len(expected)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run(make, check)
