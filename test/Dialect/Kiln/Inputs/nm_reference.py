"""Compressed 2:4 Q4_0 and Q8_0 weights, written from the description in
dialects/Kiln/IR/WeightLayout.h (nmBlockBytes), not from PackWeights.cpp,
to check kiln-pack-weights byte for byte.

    nm_reference.py make > INPUT.mlir       a module of pruned weights
    nm_reference.py check INPUT.mlir < OUTPUT.mlir

`make` writes random Q4_0 and Q8_0 blocks pruned 2:4 (some runs keep fewer
than 2 non-zeros) as dense_resource blobs, marked
`#kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>`. `check` compresses
each with numpy and compares the blob OUTPUT's compressed weight of the same
shape and bits holds; one line per weight, non-zero exit on a difference.
"""
import re
import sys

import numpy as np

# (name, rows, K, bits)
WEIGHTS = [("q4_0_pruned", 16, 128, 4), ("q8_0_pruned", 32, 64, 8)]
MARK = "sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>"


def codes_of(block, bits):
    """The 32 codes of a ggml block, in value order; and the zero code."""
    qs = block[2:]
    if bits == 8:
        return qs.copy(), 0
    return np.concatenate([qs & 15, qs >> 4]), 8


def source_blocks(rng, n, k, bits):
    blocks = []
    for _ in range(n * k // 32):
        d = np.array([rng.uniform(0.01, 0.1)], "<f2").view(np.uint8)
        if bits == 8:
            codes = rng.integers(-127, 128, 32).astype(np.int8).view(np.uint8)
            zero = 0
        else:
            codes = rng.integers(0, 16, 32).astype(np.uint8)
            zero = 8
        for run in range(8):
            # Keep 2, 1 or 0 of each run (mostly 2).
            keep = rng.choice(4, size=rng.choice([2, 2, 2, 1, 0]), replace=False)
            for p in range(4):
                if p not in keep:
                    codes[4 * run + p] = zero
        qs = codes if bits == 8 else (codes[:16] | (codes[16:] << 4)).astype(np.uint8)
        blocks.append(np.concatenate([d, qs]))
    return np.concatenate(blocks)


def compress(source, n, k, bits):
    """WeightLayout.h: per group of 16 rows, per 32-value block, the 16 f16
    scales; then 64-byte planes, bytes [4r, 4r + 4) for row r, target t
    being runs 2t and 2t+1 (bytes: run 2t's first and second kept code,
    then run 2t+1's): Q4_0 two code planes (plane j: target j low nibbles,
    j + 2 high), Q8_0 four (plane t: target t, code + 128); one plane of
    places (bits 2t..2t+1: target t's). A run with fewer than 2 non-zeros
    keeps zero codes at its first unused places; places ascend."""
    src_bytes = 2 + 32 * bits // 8
    blocks = k // 32
    src = np.frombuffer(source, np.uint8).reshape(n, blocks, src_bytes)
    code_planes = 4 if bits == 8 else 2
    out = bytearray()
    for g in range(n // 16):
        for blk in range(blocks):
            scales = bytearray(32)
            codes = bytearray(64 * code_planes)
            places = bytearray(64)
            for r in range(16):
                block = src[16 * g + r, blk]
                scales[2 * r:2 * r + 2] = bytes(block[:2])
                values, zero = codes_of(block, bits)
                for run in range(8):
                    nz = [p for p in range(4) if values[4 * run + p] != zero]
                    assert len(nz) <= 2
                    pads = [p for p in range(4) if p not in nz][:2 - len(nz)]
                    kept = sorted(nz + pads)
                    t = run // 2
                    for s, p in enumerate(kept):
                        at = 4 * r + 2 * (run % 2) + s
                        c = int(values[4 * run + p])
                        if bits == 8:
                            codes[64 * t + at] = c ^ 0x80
                        else:
                            codes[64 * (t % 2) + at] |= c << (4 * (t // 2))
                        places[at] |= p << (2 * t)
            out += scales + codes + places
    return bytes(out)


def resources(text):
    """The builtin dialect_resources of a printed module: name -> bytes."""
    return {name: bytes.fromhex(h)[4:] for name, h in
            re.findall(r'^\s*(\w+): "0x([0-9A-Fa-f]*)"', text, re.M)}


def print_module(weights):
    """A module of one function per weight, `weights` (name, rows, K, ggml
    blocks, weight type), each a kiln.linear of 2 tokens over the weight held
    in dialect_resources."""
    funcs, blobs = [], []
    for name, n, k, raw, wt in weights:
        funcs.append(
            "func.func @%s(%%x: tensor<2x%dxf32>) -> tensor<2x%dxf32> {\n"
            "  %%w = kiln.weight dense_resource<%s> : tensor<%dxi8> -> %s\n"
            "  %%y = kiln.linear %%x, %%w : tensor<2x%dxf32>, %s -> tensor<2x%dxf32>\n"
            "  return %%y : tensor<2x%dxf32>\n}\n" % (name, k, n, name, len(raw), wt, k, wt, n, n))
        blobs.append('      %s: "0x10000000%s"' % (name, raw.tobytes().hex().upper()))
    print("\n".join(funcs))
    print("{-#\n  dialect_resources: {\n    builtin: {\n%s\n    }\n  }\n#-}" % ",\n".join(blobs))


def read_modules(source_path):
    """`check`'s inputs: the source module's text (a file), the packed
    one's (stdin), and the dialect_resources of each."""
    source_text = open(source_path).read()
    packed_text = sys.stdin.read()
    return source_text, packed_text, resources(source_text), resources(packed_text)


def run(make, check):
    """The reference scripts' command line: `make`, or `check INPUT.mlir`."""
    if sys.argv[1] == "make":
        make()
    else:
        check(sys.argv[2])


def make():
    rng = np.random.default_rng(7)
    weights = []
    for name, n, k, bits in WEIGHTS:
        wt = "!kiln.weight<%dx%dx#kiln.quant<bits = %d, group = 32, scale = f16, layout = gguf>, %s>" % (
            n, k, bits, MARK)
        weights.append((name, n, k, source_blocks(rng, n, k, bits), wt))
    print_module(weights)


WEIGHT = re.compile(r'kiln\.weight dense_resource<(\w+)> : tensor<\d+xi8> -> '
                    r'!kiln\.weight<(\d+)x(\d+)x#kiln\.quant<bits = (\d), group = 32, scale = f16, '
                    r'layout = gguf>, sparsity = #kiln\.sparsity<kind = n_m, n = 2, m = 4(, dense = true)?>>')


def check(source_path):
    source_text, packed_text, sources, packed = read_modules(source_path)
    outputs = {(int(n), int(k), int(b)): packed[name]
               for name, n, k, b, dense in WEIGHT.findall(packed_text) if not dense}
    failed = not sources
    for name, n, k, b, dense in WEIGHT.findall(source_text):
        key = (int(n), int(k), int(b))
        expected = compress(sources[name], *key)
        if outputs.get(key) != expected:
            failed = True
            print("%s: compressed bytes differ from the reference" % name)
        else:
            print("%s: %d compressed bytes match (%d dense)" % (name, len(expected), len(sources[name])))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run(make, check)
