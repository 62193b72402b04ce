"""kiln-quantize's round-to-nearest encoders against independent references.

ggml formats: the bytes must equal those of the gguf Python package's
quantizer (gguf.quants.quantize, which follows ggml-quants.c's
quantize_row_*_ref bit for bit). Kiln's packed layout: the codes, scales and
zeros must equal a float64 numpy implementation of the documented rule
(RoundToNearest.h), and the dequantized error must stay within half a step.

usage: check_rtn.py DRIVER WORKDIR
"""

import os
import subprocess
import sys

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants

DRIVER, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
rng = np.random.default_rng(13)


def run_driver(options, values):
    src = os.path.join(WORK, "in.f32")
    dst = os.path.join(WORK, "out.bin")
    values.astype(np.float32).tofile(src)
    subprocess.run([DRIVER, options, str(values.shape[1]), src, dst], check=True)
    return np.fromfile(dst, dtype=np.uint8)


def test_data(rows, k):
    """Gaussian rows with a few outliers, an all-zero group and ties."""
    x = rng.standard_normal((rows, k)).astype(np.float32)
    x[0, :32] = 0.0
    x[1, 5] = 40.0
    x[2, :32] = np.float32(0.25) * np.arange(-16, 16)  # exact halves of steps
    x[3] *= np.float32(1e-6)  # scales in f16's subnormal range
    return x


# ggml formats: byte equality with gguf-py.
ggml = {"q4_0": ("bits=4,group=32,sym", QT.Q4_0),
        "q4_1": ("bits=4,group=32,asym", QT.Q4_1),
        "q5_0": ("bits=5,group=32,sym", QT.Q5_0),
        "q5_1": ("bits=5,group=32,asym", QT.Q5_1),
        "q8_0": ("bits=8,group=32,sym", QT.Q8_0)}
x = test_data(64, 256)
for name, (options, qtype) in ggml.items():
    got = run_driver(options + ",format=gguf", x)
    want = quants.quantize(x, qtype).reshape(-1)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    diff = np.flatnonzero(got != want)
    assert diff.size == 0, f"{name}: {diff.size} bytes differ, first at {diff[:5]}"
    print(f"{name}: {got.size} bytes equal gguf-py")


# Kiln packed: float64 reference of the rule in RoundToNearest.h.
def store(value, kind):
    v = np.asarray(value, dtype=np.float64).astype(np.float32)
    if kind == "f32":
        return v.astype(np.float64), v.view(np.uint8).reshape(-1, 4)
    if kind == "f16":
        h = v.astype(np.float16)
        return h.astype(np.float64), h.view(np.uint8).reshape(-1, 2)
    # bf16, rounded to nearest even from float32
    u = v.view(np.uint32).astype(np.uint64)
    b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    back = (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return back, b.view(np.uint8).reshape(-1, 2)


def reference_packed(x, bits, group, sym, scale_type):
    rows, k = x.shape
    g = x.astype(np.float64).reshape(-1, group)
    top = (1 << bits) - 1
    mid = 1 << (bits - 1)
    if sym:
        idx = np.abs(g).argmax(axis=1)
        largest = g[np.arange(len(g)), idx]
        scale, scale_bytes = store(largest / -mid, scale_type)
        safe = np.where(scale == 0, 1.0, scale)
        codes = np.where(scale[:, None] == 0, mid,
                         np.rint(g / safe[:, None]) + mid)
        header = [scale_bytes]
        value = scale[:, None] * (np.clip(codes, 0, top) - mid)
    else:
        lo, hi = g.min(axis=1), g.max(axis=1)
        scale, scale_bytes = store((hi - lo) / top, scale_type)
        zero, zero_bytes = store(lo, scale_type)
        safe = np.where(scale == 0, 1.0, scale)
        codes = np.where(scale[:, None] == 0, 0,
                         np.rint((g - zero[:, None]) / safe[:, None]))
        header = [scale_bytes, zero_bytes]
        value = scale[:, None] * np.clip(codes, 0, top) + zero[:, None]
    codes = np.clip(codes, 0, top).astype(np.uint64)
    # LSB-first bit stream of `bits`-wide codes per group.
    bit_matrix = ((codes[:, :, None] >> np.arange(bits, dtype=np.uint64)) & 1)
    packed = np.packbits(bit_matrix.reshape(len(g), -1).astype(np.uint8),
                         axis=1, bitorder="little")
    blocks = np.concatenate(header + [packed], axis=1)
    return blocks.reshape(-1), codes, scale, value.reshape(rows, k)


cases = 0
for bits in range(2, 9):
    for group in (32, 64, 128, "channel"):
        for sym in (True, False):
            for scale_type in ("f16", "bf16", "f32"):
                k = 256
                g = k if group == "channel" else group
                x = test_data(8, k)
                options = (f"bits={bits},group={group},"
                           f"{'sym' if sym else 'asym'},scale={scale_type}")
                got = run_driver(options, x)
                want, codes, scale, value = reference_packed(x, bits, g, sym,
                                                             scale_type)
                assert got.shape == want.shape, (options, got.shape, want.shape)
                diff = np.flatnonzero(got != want)
                assert diff.size == 0, f"{options}: {diff.size} bytes differ"
                # Round to nearest: every value lies within half a step (the
                # stored scale) of the clamp of x into its group's grid.
                xs = x.astype(np.float64).reshape(-1, g)
                if sym:
                    ends = scale[:, None] * np.array([-(1 << (bits - 1)),
                                                      (1 << (bits - 1)) - 1])
                else:
                    zero = store(xs.min(axis=1), scale_type)[0]
                    ends = zero[:, None] + scale[:, None] * np.array([0, (1 << bits) - 1])
                clamped = np.clip(xs, ends.min(axis=1)[:, None], ends.max(axis=1)[:, None])
                err = np.abs(value.reshape(-1, g) - clamped)
                assert (err <= np.abs(scale)[:, None] * (0.5 + 1e-12)).all(), options
                cases += 1
print(f"packed: {cases} schemes equal the float64 reference")
