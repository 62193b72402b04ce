"""The split layout of Q4_0, Q4_1 and Q8_0 weights, written from the
description in lib/Conversion/KilnToGPU/IR/SplitLayout.h (not from
SplitLayout.cpp), to check kiln-pack-weights{target=cuda}.

    split_reference.py INPUT.mlir < OUTPUT.mlir

For every `kiln.weight dense_resource<SRC> ... -> <N>x<K>x#kiln.quant<...
layout = gguf>>` of INPUT (group 32), packs SRC's bytes with numpy and
compares them with the blob that OUTPUT's weight of the same shape and
scheme in target_layout = #kiln_gpu.split holds. Prints one line per weight
and exits non-zero on a difference.
"""
import re
import sys

import numpy as np

WEIGHT = re.compile(r'kiln\.weight dense_resource<(\w+)> : tensor<\d+xi8> -> '
                    r'!kiln\.weight<(\d+)x(\d+)x#kiln\.quant<bits = (\d), '
                    r'group = 32, scale = f16(, zero = f16)?, layout = gguf'
                    r'(?:, target_layout = #kiln_gpu\.(\w+))?>>')


def resources(text):
    """The builtin dialect_resources of a printed module: name -> bytes."""
    out = {}
    for name, hexdata in re.findall(r'^\s*(\w+): "0x([0-9A-Fa-f]*)"', text,
                                    re.M):
        # The first 4 bytes are the blob's alignment, little-endian.
        out[name] = bytes.fromhex(hexdata)[4:]
    return out


def pack(source, n, k, bits, zero):
    """SplitLayout.h: every row's codes (Q bytes a block, in 16-byte planes:
    plane p of a row holds bytes [16p, 16p + 16) of each block's codes, block
    c at 16c), then every block's header (H bytes: d, and m for Q4_1), row by
    row."""
    code_bytes = 16 if bits == 4 else 32
    header_bytes = 4 if zero else 2
    blocks = k // 32
    src = np.frombuffer(source, np.uint8).reshape(n, blocks,
                                                  header_bytes + code_bytes)
    codes = src[:, :, header_bytes:]  # [n, blocks, Q]
    planes = codes.reshape(n, blocks, code_bytes // 16, 16).transpose(0, 2, 1, 3)
    headers = src[:, :, :header_bytes]
    return planes.tobytes() + headers.tobytes()


def main():
    source_text = open(sys.argv[1]).read()
    packed_text = sys.stdin.read()
    sources, packed = resources(source_text), resources(packed_text)
    outputs = {}
    # layout: the target layout's name, "" for ggml's blocks row by row.
    for name, n, k, bits, zero, layout in WEIGHT.findall(packed_text):
        if layout == "split":
            outputs[(int(n), int(k), int(bits), bool(zero))] = packed[name]
    failed = False
    checked = set()
    for name, n, k, bits, zero, layout in WEIGHT.findall(source_text):
        if layout or name in checked:
            continue
        key = (int(n), int(k), int(bits), bool(zero))
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
