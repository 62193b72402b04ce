"""The rows16 layout of Q4_0 and Q8_0 weights, written from the description in
lib/Conversion/KilnToCPU/IR/Rows16.h (not from Rows16.cpp), to check
kiln-pack-weights{target=cpu}.

    rows16_reference.py INPUT.mlir < OUTPUT.mlir

For every `kiln.weight dense_resource<SRC> ... -> <N>x<K>x#kiln.quant<...
layout = gguf>>` of INPUT (Q4_0: bits = 4, Q8_0: bits = 8, group 32), packs
SRC's bytes with numpy and compares them with the blob that OUTPUT's weight
of the same shape and target_layout = #kiln_cpu.rows16 holds. Prints one
line per weight and exits non-zero on a difference.
"""
import re
import sys

import numpy as np

ROWS = 16


def resources(text):
    """The builtin dialect_resources of a printed module: name -> bytes."""
    out = {}
    for name, hexdata in re.findall(r'^\s*(\w+): "0x([0-9A-Fa-f]*)"', text,
                                    re.M):
        # The first 4 bytes are the blob's alignment, little-endian.
        out[name] = bytes.fromhex(hexdata)[4:]
    return out


WEIGHT = re.compile(r'kiln\.weight dense_resource<(\w+)> : tensor<\d+xi8> -> '
                    r'!kiln\.weight<(\d+)x(\d+)x#kiln\.quant<bits = (\d), '
                    r'group = 32, scale = f16, layout = gguf'
                    r'(?:, target_layout = #kiln_cpu\.(\w+))?>>')


def pack(source, n, k, bits):
    """Rows16.h: per group of 16 rows, the d (f16) of each row per 32-value
    block (headers, padded to 64 bytes), then per block the code planes:
    bytes [4r, 4r + 4) of a plane belong to row r."""
    block_bytes = 2 + (16 if bits == 4 else 32)
    blocks = k // 32
    src = np.frombuffer(source, np.uint8).reshape(n, blocks, block_bytes)
    header_bytes = (blocks * 32 + 63) // 64 * 64
    plane_bytes = 256 if bits == 4 else 512
    groups = (n + ROWS - 1) // ROWS
    out = np.zeros((groups, header_bytes + blocks * plane_bytes), np.uint8)
    for row in range(n):
        g, r = divmod(row, ROWS)
        for b in range(blocks):
            d = src[row, b, :2]
            qs = src[row, b, 2:]
            out[g, 32 * b + 2 * r:32 * b + 2 * r + 2] = d
            planes = out[g, header_bytes + b * plane_bytes:
                         header_bytes + (b + 1) * plane_bytes]
            if bits == 4:
                # ggml: qs[i] = value i (low nibble) | value i + 16 (high);
                # plane j: low nibbles values 4j..4j+3 (target j), high
                # nibbles values 4(j + 4).. (target j + 4) = 16 + 4j...
                codes = np.concatenate([qs & 15, qs >> 4])
                for j in range(4):
                    lo = codes[4 * j:4 * j + 4]
                    hi = codes[4 * (j + 4):4 * (j + 4) + 4]
                    planes[64 * j + 4 * r:64 * j + 4 * r + 4] = lo | (hi << 4)
            else:
                # Q8_0: plane t = values 4t..4t+3 as unsigned q + 128.
                codes = (qs.view(np.int8).astype(np.int16) + 128).astype(
                    np.uint8)
                for t in range(8):
                    planes[64 * t + 4 * r:64 * t + 4 * r + 4] = \
                        codes[4 * t:4 * t + 4]
    return out.tobytes()


def main():
    source_text = open(sys.argv[1]).read()
    packed_text = sys.stdin.read()
    sources, packed = resources(source_text), resources(packed_text)
    outputs = {}
    # layout: the target layout's name, "" for ggml's blocks row by row.
    for name, n, k, bits, layout in WEIGHT.findall(packed_text):
        if layout == "rows16":
            outputs[(int(n), int(k), int(bits))] = packed[name]
    failed = False
    checked = set()
    for name, n, k, bits, layout in WEIGHT.findall(source_text):
        if layout or name in checked:
            continue
        key = (int(n), int(k), int(bits))
        expected = pack(sources[name], *key)
        got = outputs.get(key)
        if got != expected:
            failed = True
            print(f"{name}: packed bytes differ from the reference")
        else:
            print(f"{name}: {len(expected)} packed bytes match")
        checked.add(name)
    if not checked:
        print("no gguf-layout weight found")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
