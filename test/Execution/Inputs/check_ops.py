"""Execution tests of convert-kiln-to-cpu: each kiln op and weight format,
lowered and run, against a float64 numpy reference (weights dequantized by
the independent numpy implementation in the `gguf` package).

Usage: check_ops.py OP[=FMT,...] [OP...]   (OP: the keys of CHECKS below;
FMT: linear_int8's formats, keys of SCHEMES)
Exits non-zero if any check fails; prints one line per check.
"""

import math
import os
import re
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

from kiln_exec import Compiled, check, rel_error, runnable_variant

RNG = np.random.default_rng(1234)

# GGUF formats as #kiln.quant schemes (the importer's mapping).
SCHEMES = {
    "f32": ("f32", None),
    "f16": ("f16", T.F16),
    "bf16": ("bf16", T.BF16),
    "q8_0": ("#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>", T.Q8_0),
    "q4_0": ("#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>", T.Q4_0),
    "q4_1": ("#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>", T.Q4_1),
    "q5_0": ("#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf>", T.Q5_0),
    "q5_1": ("#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf>", T.Q5_1),
    "q2_k": ("#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, "
             "sub_scale_bits = 4, layout = gguf>", T.Q2_K),
    "q3_k": ("#kiln.quant<bits = 3, group = 16, scale = f16, super_group = 256, "
             "sub_scale_bits = 6, layout = gguf>", T.Q3_K),
    "q4_k": ("#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, "
             "sub_scale_bits = 6, layout = gguf>", T.Q4_K),
    "q5_k": ("#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, super_group = 256, "
             "sub_scale_bits = 6, layout = gguf>", T.Q5_K),
    "q6_k": ("#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, "
             "sub_scale_bits = 8, layout = gguf>", T.Q6_K),
    "iq4_nl": ("#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl>",
               T.IQ4_NL),
    "iq4_xs": ("#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256, "
               "sub_scale_bits = 6, layout = gguf, codebook = iq4_nl>", T.IQ4_XS),
    "tq2_0": ("#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, codebook = ternary>", T.TQ2_0),
    "tq1_0": ("#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, codebook = ternary_base3>",
              T.TQ1_0),
    "iq2_xxs": ("#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, "
                "sub_scale_bits = 4, layout = gguf, codebook = iq2_xxs>", T.IQ2_XXS),
    "iq3_xxs": ("#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, "
                "sub_scale_bits = 4, layout = gguf, codebook = iq3_xxs>", T.IQ3_XXS),
    "iq2_xs": ("#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, "
               "sub_scale_bits = 4, layout = gguf, codebook = iq2_xs>", T.IQ2_XS),
    "iq3_s": ("#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, "
              "sub_scale_bits = 4, layout = gguf, codebook = iq3_s>", T.IQ3_S),
    "iq2_s": ("#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, "
              "sub_scale_bits = 4, layout = gguf, codebook = iq2_s>", T.IQ2_S),
    "iq1_s": ("#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, "
              "sub_scale_bits = 3, layout = gguf, codebook = iq1_s>", T.IQ1_S),
    "iq1_m": ("#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, "
              "sub_scale_bits = 3, layout = gguf, codebook = iq1_m>", T.IQ1_M),
}

# Formats only the int8 kernels read (the f32 lowering refuses them).
INT8_ONLY = {"iq4_nl", "iq4_xs", "tq2_0", "tq1_0", "iq2_xxs", "iq3_xxs", "iq2_xs", "iq3_s", "iq2_s", "iq1_s",
             "iq1_m"}

# ggml's K-quants: 256-value super-blocks. gguf.quants cannot quantize them,
# so their tests use random block bytes with sane f16 super-scales, decoded
# by gguf.quants.dequantize. Offsets of the f16 fields, per ggml-common.h.
K_QUANT_F16_FIELDS = {
    T.Q2_K: [80, 82],  # d, dmin at the end
    T.Q3_K: [108],     # d at the end
    T.Q4_K: [0, 2],    # d, dmin first
    T.Q5_K: [0, 2],
    T.Q6_K: [208],     # d at the end
}
# The IQ formats' random blocks, the same way: d first (IQ1_M has no d
# field: set_iq1_m_scale).
IQ_F16_FIELDS = {T.IQ4_NL: [0], T.IQ4_XS: [0], T.IQ2_XXS: [0], T.IQ3_XXS: [0], T.IQ2_XS: [0], T.IQ3_S: [0],
                 T.IQ2_S: [0], T.IQ1_S: [0], T.IQ1_M: []}


def set_iq1_m_scale(blocks, d):
    """IQ1_M's f16 scale d is the top nibbles of the four u16 words of
    scales at byte 48, nibble i in word i (gguf's IQ1_M.dequantize_blocks)."""
    words = blocks[:, 48:56].copy().view("<u2")
    bits = d.view("<u2")
    for i in range(4):
        words[:, i] = (words[:, i] & 0x0FFF) | (((bits >> (4 * i)) & 0xF) << 12)
    blocks[:, 48:56] = words.view(np.uint8)


class Packed:
    """Kiln's packed layout (Dequant.h): per group of `group` values, the
    scale, [the zero], then group*bits/8 bytes of codes, code i in bits
    [i*bits, (i+1)*bits) of the code bytes, LSB first. Value = scale * (code -
    2^(bits-1)) when symmetric, else scale * code + zero."""

    def __init__(self, bits, group, scale, zero=None):
        self.bits, self.group, self.scale, self.zero = bits, group, scale, zero

    def scheme(self):
        return "#kiln.quant<bits = %d, group = %d, scale = %s%s>" % (
            self.bits, self.group, self.scale, ", zero = %s" % self.zero if self.zero else "")

    def block_bytes(self):
        return FLOAT_BYTES[self.scale] + FLOAT_BYTES.get(self.zero, 0) + self.group * self.bits // 8


FLOAT_BYTES = {"f32": 4, "f16": 2, "bf16": 2}


def float_bytes(v, ty):
    """Rounds float64 `v` (1-D) to `ty`; returns (stored bytes, rounded values)."""
    v32 = np.asarray(v, dtype=np.float32)
    if ty == "f32":
        return v32.view(np.uint8).reshape(-1, 4), v32.astype(np.float64)
    if ty == "f16":
        h = v32.astype("<f2")
        return h.view(np.uint8).reshape(-1, 2), h.astype(np.float64)
    # bf16: round to nearest even on the top 16 bits of the f32.
    u = v32.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    return u.view(np.uint8).reshape(-1, 2), float_from_bytes(u.view(np.uint8).reshape(-1, 2), ty)


def float_from_bytes(raw, ty):
    """Reads [n, bytes] little-endian `ty` values as float64."""
    raw = np.ascontiguousarray(raw)
    if ty == "f32":
        return raw.view("<f4").reshape(-1).astype(np.float64)
    if ty == "f16":
        return raw.view("<f2").reshape(-1).astype(np.float64)
    return (raw.view("<u2").reshape(-1).astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def packed_encode(values, p):
    """Quantizes [rows, k] float64 to Kiln's packed layout: bytes [rows*k/group,
    block_bytes] and the per-value error bound of this quantization."""
    g = values.reshape(-1, p.group).astype(np.float64)
    top = 2 ** p.bits - 1
    # Scales are enlarged by 2^-6 so that rounding them to bf16/f16 (relative
    # error <= 2^-8) never pushes a code out of range.
    slack = 1 + 2.0 ** -6
    if p.zero is None:
        mid = 2 ** (p.bits - 1)
        scale_raw, scale = float_bytes(np.abs(g).max(1) / (mid - 1) * slack, p.scale)
        scale = np.where(scale == 0, 1.0, scale)
        codes = np.clip(np.rint(g / scale[:, None]) + mid, 0, top)
        zero_raw, bound = None, scale[:, None] / 2
    else:
        lo, hi = g.min(1), g.max(1)
        scale_raw, scale = float_bytes((hi - lo) / top * slack, p.scale)
        scale = np.where(scale == 0, 1.0, scale)
        zero_raw, zero = float_bytes(lo, p.zero)
        codes = np.clip(np.rint((g - zero[:, None]) / scale[:, None]), 0, top)
        # Below the stored zero (rounded up from the min) a code clips at 0.
        bound = scale[:, None] / 2 + np.abs(zero - lo)[:, None]
    codes = codes.astype(np.uint64)
    # Code i's bit j is bit i*bits + j of the code bytes, LSB first.
    bits = ((codes[:, :, None] >> np.arange(p.bits, dtype=np.uint64)) & 1).astype(np.uint8)
    code_bytes = np.packbits(bits.reshape(len(g), -1), axis=1, bitorder="little")
    parts = [scale_raw] + ([zero_raw] if zero_raw is not None else []) + [code_bytes]
    blocks = np.concatenate(parts, axis=1)
    assert blocks.shape[1] == p.block_bytes()
    return blocks, np.broadcast_to(bound, g.shape).reshape(values.shape)


def packed_decode(blocks, p, shape):
    """The reference decoder of Kiln's packed layout, read from the bytes."""
    sb = FLOAT_BYTES[p.scale]
    zb = FLOAT_BYTES.get(p.zero, 0)
    scale = float_from_bytes(blocks[:, :sb], p.scale)[:, None]
    bits = np.unpackbits(blocks[:, sb + zb:], axis=1, bitorder="little")
    bits = bits.reshape(len(blocks), p.group, p.bits).astype(np.int64)
    codes = (bits << np.arange(p.bits)).sum(-1).astype(np.float64)
    if p.zero is None:
        out = scale * (codes - 2 ** (p.bits - 1))
    else:
        out = scale * codes + float_from_bytes(blocks[:, sb:sb + zb], p.zero)[:, None]
    return out.reshape(shape)


# Kiln's packed layout at every width 2..8, groups 32 and 64, each scale type,
# symmetric and with a float zero.
for _i, _bits in enumerate(range(2, 9)):
    _sym = Packed(_bits, [32, 64][_i % 2], ["f16", "bf16", "f32"][_i % 3])
    _asym = Packed(_bits, [64, 32][_i % 2], ["bf16", "f32", "f16"][_i % 3], ["f16", "f32", "bf16"][_i % 3])
    for _p in (_sym, _asym):
        SCHEMES["p%dg%d_%s%s" % (_p.bits, _p.group, _p.scale, "_z" + _p.zero if _p.zero else "")] = (
            _p.scheme(), _p)


# Groups over 64 values (several 32-value chunks under one scale) and one
# group per row (per channel, K = 256).
for _p in (Packed(4, 128, "f16"), Packed(3, 128, "bf16", "bf16"), Packed(6, 256, "f32")):
    SCHEMES["p%dg%d_%s%s" % (_p.bits, _p.group, _p.scale, "_z" + _p.zero if _p.zero else "")] = (
        _p.scheme(), _p)


def packed_group(fmt):
    qtype = SCHEMES[fmt][1] if fmt in SCHEMES else None
    return qtype.group if isinstance(qtype, Packed) else 32


def is_k_quant(fmt):
    """K-quants and the other ggml formats of 256-value super-blocks."""
    qtype = SCHEMES[fmt][1]
    return qtype in quants.GGML_QUANT_SIZES and quants.GGML_QUANT_SIZES[qtype][0] == 256


def linear_shapes(fmt):
    """(n, k) shapes for `fmt`: K a multiple of its block."""
    if is_k_quant(fmt):
        return [(32, 256), (48, 512)]
    return [(n, k) for (n, k) in [(64, 64), (96, 256), (48, 384)]
            if k % packed_group(fmt) == 0][:2]


def embedding_dim(fmt):
    return 256 if is_k_quant(fmt) else max(64, packed_group(fmt))


def encode(values, fmt):
    """Returns (bytes, dequantized float64 values) of a [rows, k] matrix."""
    values = values.astype(np.float32)
    if fmt == "f32":
        return values.tobytes(), values.astype(np.float64)
    qtype = SCHEMES[fmt][1]
    if isinstance(qtype, Packed):
        blocks, bound = packed_encode(values.astype(np.float64), qtype)
        back = packed_decode(blocks, qtype, values.shape)
        err = np.abs(back - values)
        if not np.all(err <= bound * (1 + 1e-9) + 1e-12):
            raise AssertionError("packed %s: decode(encode(w)) is off by %g > its bound" % (
                fmt, (err - bound).max()))
        return blocks.tobytes(), back
    f16_fields = K_QUANT_F16_FIELDS.get(qtype, IQ_F16_FIELDS.get(qtype))
    if f16_fields is not None:
        block_size, type_size = quants.GGML_QUANT_SIZES[qtype]
        blocks = RNG.integers(0, 256, (values.size // block_size, type_size), dtype=np.uint8)
        for off in f16_fields:
            d = RNG.uniform(0.002, 0.02, len(blocks)).astype("<f2")
            blocks[:, off:off + 2] = d.view(np.uint8).reshape(-1, 2)
        if qtype == T.IQ1_M:
            set_iq1_m_scale(blocks, RNG.uniform(0.002, 0.02, len(blocks)).astype("<f2"))
        raw = blocks.reshape(values.shape[0], -1)
    else:
        raw = quants.quantize(values, qtype)
    back = quants.dequantize(raw, qtype).astype(np.float64)
    return raw.tobytes(), back


def weight_type(shape, fmt):
    enc = SCHEMES[fmt][0]
    dims = "x".join(str(d) for d in shape)
    return "!kiln.weight<%sx%s>" % (dims, enc)


class Weights:
    """Appends weights to one file, 64-byte aligned, like kiln-compile."""

    def __init__(self):
        self.data = bytearray()

    def add(self, raw):
        pad = (-len(self.data)) % 64
        self.data += b"\0" * pad
        offset = len(self.data)
        self.data += raw
        return '#kiln.external<"weights.bin", offset = %d, size = %d>' % (offset, len(raw))

    def array(self):
        return np.frombuffer(bytes(self.data) + b"\0" * 64, dtype=np.uint8).copy()


def linear_module(w, raw, wt, n, k, bias=None, max_tokens=8):
    """The module of one kiln.linear, y = x W^T (+ bias), whose weight of
    type `wt` has the bytes `raw`, and the f32 `bias` if given, both added
    to `w` (in that order)."""
    wsrc = w.add(raw)
    bias_line, bias_op, bias_ty = "", "", ""
    if bias is not None:
        bias_line = "  %%b = kiln.weight %s -> !kiln.weight<%dxf32>\n" % (w.add(bias.tobytes()), n)
        bias_op, bias_ty = ", bias %b", ", !kiln.weight<%dxf32>" % n
    return (
        "func.func @f(%%x: tensor<?x%dxf32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = %d} {\n"
        "  %%w = kiln.weight %s -> %s\n%s"
        "  %%y = kiln.linear %%x, %%w%s : tensor<?x%dxf32>, %s%s -> tensor<?x%dxf32>\n"
        "  return %%y : tensor<?x%dxf32>\n}\n"
    ) % (k, n, max_tokens, wsrc, wt, bias_line, bias_op, k, wt, bias_ty, n, n)


_compiled = {}


def compile_once(mlir, weights, activations="f32", cpu="generic", flags=()):
    """The module compiled for `cpu` (kiln-compile `flags` added), once per
    module text, weights, flags and code variant: cases that differ only in
    their inputs, token count or threads share one compile (a compile costs
    seconds; a call, microseconds)."""
    key = (mlir, bytes(weights.data), activations, runnable_variant(cpu), cpu == "generic", tuple(flags))
    if key not in _compiled:
        if len(_compiled) >= 8:
            _compiled.clear()
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "weights.bin"), "wb") as f:
                f.write(weights.data)
            _compiled[key] = Compiled(mlir, d, activations, cpu, flags)
    return _compiled[key]


def run(mlir, name, args, outs, weights, threads, activations="f32", cpu="generic"):
    compile_once(mlir, weights, activations, cpu).call(name, args, outs, threads=threads)


def check_linear():
    ok = True
    for fmt in [f for f in SCHEMES if f not in INT8_ONLY]:
        for (n, k) in linear_shapes(fmt):
            for bias in [False, True]:
                # One weight (one compile) for the token and thread counts.
                w = Weights()
                wv = RNG.standard_normal((n, k)) * 0.5
                raw, deq = encode(wv, fmt)
                bv = RNG.standard_normal(n).astype(np.float32)
                mlir = linear_module(w, raw, weight_type((n, k), fmt), n, k, bv if bias else None)
                for tokens, threads in [(1, 1), (5, 2), (8, 3)]:
                    x = RNG.standard_normal((tokens, k)).astype(np.float32)
                    y = np.zeros((tokens, n), dtype=np.float32)
                    run(mlir, "f", [x], [y], w, threads)
                    want = x.astype(np.float64) @ deq.T + (bv if bias else 0)
                    ok &= check("linear %s %dx%d T=%d threads=%d%s" % (
                        fmt, n, k, tokens, threads, " bias" if bias else ""), y, want, 1e-5)
    return ok


def quantize_q8(x, bits=8):
    """numpy model of Kiln's quantized activations (at 8 bits ggml's q8_1):
    per 32 values, with m = 2^(bits-1) - 1, scale amax/m rounded to f16,
    codes rint(x * m/amax) (half to even, f32 product) clamped to [-m, m],
    and f16(scale * sum(codes)) with the unrounded f32 scale."""
    m = np.float32(2 ** (bits - 1) - 1)
    blocks = x.astype(np.float32).reshape(x.shape[0], -1, 32)
    amax = np.abs(blocks).max(-1, keepdims=True)
    d = amax / m
    inv = np.where(amax != 0, m / np.where(amax != 0, amax, 1), 0).astype(np.float32)
    q = np.clip(np.rint(blocks * inv), -m, m)
    dh = d.astype(np.float16).astype(np.float64)
    s = (d[..., 0] * q.sum(-1).astype(np.float32)).astype(np.float16).astype(np.float64)
    return q.astype(np.float64), dh, s


# The formats linear layers multiply with int8 activations.
INT_FORMATS = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs",
               "p2g32_f16", "p3g32_f32_zf32", "p4g64_f16_zbf16", "p5g64_f16",
               "p8g64_bf16_zf16", "p4g128_f16", "p3g128_bf16_zbf16", "p6g256_f32"]


def block_mins(raw, fmt, n, k):
    """[n, k/32] float64: the min each 32-value block adds to its values
    (value = scale * code + min), 0 for symmetric formats."""
    if fmt in ("q4_1", "q5_1"):
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n, k // 32, -1)
        return blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
    if fmt in ("q4_k", "q5_k"):
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n, k // 256, 144 if fmt == "q4_k" else 176)
        dmin = blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64)
        sc = blocks[:, :, 4:16].astype(np.int64)
        # ggml's get_scale_min_k4, the mins only.
        m = np.concatenate([sc[..., 4:8] & 63,
                            (sc[..., 8:12] >> 4) | ((sc[..., 4:8] >> 6) << 4)], axis=-1)
        return (-dmin[..., None] * m).reshape(n, k // 32)
    qtype = SCHEMES[fmt][1]
    if isinstance(qtype, Packed) and (qtype.zero is not None or n % 16):
        # Codes are unsigned. In rows16 (n a multiple of 16) symmetric groups
        # take -2^(bits-1) exactly through the activations' code sums, as
        # Q4_0; the row-at-a-time kernels add it as a min, through the stored
        # sum. A float zero is a min.
        sb = FLOAT_BYTES[qtype.scale]
        blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n * k // qtype.group, -1)
        if qtype.zero is None:
            mins = -(2.0 ** (qtype.bits - 1)) * float_from_bytes(blocks[:, :sb], qtype.scale)
        else:
            mins = float_from_bytes(blocks[:, sb:sb + FLOAT_BYTES[qtype.zero]], qtype.zero)
        return np.repeat(mins.reshape(-1), qtype.group // 32).reshape(n, k // 32)
    return np.zeros((n, k // 32))


# Formats with a test of their own (ternary-grid-formats.test), kept under
# CI's 40 s: TQ2_0 and IQ2_XXS on each CPU variant; TQ1_0, IQ3_XXS and IQ3_S,
# whose rows16 kernels are those (only the packer and the codebook differ),
# and IQ2_XS (scales per 16 values, as Q6_K's), once. iq1-iq2s-formats.test:
# IQ1_S generic and x86-64-v4, IQ1_M and IQ2_S (IQ2_XS's kernels, other
# packers) once, x86-64-v4 and x86-64-v3 (under CI's 30 s for a new test).
_GENERIC, _V4, _V3 = ((48, 256), ("generic", 8, 3)), ((32, 512), ("x86-64-v4", 1, 1)), \
    ((32, 512), ("x86-64-v3", 5, 2))
OWN_TEST_CASES = {"tq2_0": [_GENERIC, _V4, _V3], "tq1_0": [_V3], "iq2_xxs": [_GENERIC, _V4, _V3],
                  "iq3_xxs": [_V4], "iq3_s": [_GENERIC], "iq2_xs": [_V3], "iq2_s": [_V3],
                  "iq1_s": [_GENERIC, _V4], "iq1_m": [_V4]}


def check_linear_int8(formats=INT_FORMATS):
    ok = True
    cases = [("generic", 1, 1), ("generic", 5, 2), ("generic", 8, 3),
             ("x86-64-v4", 1, 1), ("x86-64-v4", 1, 3), ("x86-64-v4", 6, 2),
             ("x86-64-v3", 1, 2), ("x86-64-v3", 5, 1)]
    for fmt in formats:
        # Packed formats share one kernel path; a few cases each suffice.
        fmt_cases = cases[1:6:2] if fmt.startswith("p") else cases
        if fmt in OWN_TEST_CASES:
            for (n, k), (cpu, tokens, threads) in OWN_TEST_CASES[fmt]:
                ok &= check_linear_int8_case(fmt, n, k, cpu, tokens, threads)
            continue
        # One weight per shape: cases on the same code variant share a compile.
        # K = 96: three blocks, a pair step and a single-block tail of the
        # GGUF-layout kernels (kept for layouts rows16 does not cover).
        shapes = [(48, 256), (32, 512)] if is_k_quant(fmt) else [
            (n, k) for (n, k) in [(64, 64), (80, 96), (96, 256), (48, 384)]
            if k % packed_group(fmt) == 0][:2 if fmt.startswith("p") else 3]
        for (n, k) in shapes:
            weight = encode(RNG.standard_normal((n, k)) * 0.5, fmt)
            for cpu, tokens, threads in fmt_cases:
                ok &= check_linear_int8_case(fmt, n, k, cpu, tokens, threads, weight)
    return ok


def check_linear_int8_case(fmt, n, k, cpu, tokens, threads, weight=None):
    """One linear over `fmt` weights (encode's raw bytes and values, random
    if None) with int8 activations; True if it matches."""
    w = Weights()
    raw, deq = weight or encode(RNG.standard_normal((n, k)) * 0.5, fmt)
    mlir = linear_module(w, raw, weight_type((n, k), fmt), n, k)
    x = RNG.standard_normal((tokens, k)).astype(np.float32)
    y = np.zeros((tokens, n), dtype=np.float32)
    run(mlir, "f", [x], [y], w, threads, activations="int8", cpu=cpu)
    q, dh, s = quantize_q8(x)
    want = (q * dh).reshape(tokens, k) @ deq.T
    # Formats with a min use the stored code sum s, not dh * sum(q).
    want += (s - dh[..., 0] * q.sum(-1)) @ block_mins(raw, fmt, n, k).T
    return check("linear int8 %s %s %dx%d T=%d threads=%d" % (cpu, fmt, n, k, tokens, threads),
                 y, want, 1e-5)


def check_linear_activation_bits():
    """WbAb: Kiln's packed b-bit weights times b-bit activations, through the
    same integer kernels as int8; the linear's own quantizer (an argument)
    and a norm's and a multiply's fused epilogues. Checked against a float64
    numpy simulation of the same quantization (quantize_q8 at b bits); the
    error against the float product is reported."""
    ok = True
    cases = [(bits, "x86-64-v4", 5, 2) for bits in range(2, 9)] + [
        (5, "x86-64-v3", 3, 1), (5, "generic", 6, 3), (4, "x86-64-v3", 1, 2), (6, "generic", 2, 1)]
    n, k = 64, 96
    for bits, cpu, tokens, threads in cases:
        fmt = "p%dg32_f16" % bits
        SCHEMES.setdefault(fmt, (Packed(bits, 32, "f16").scheme(), Packed(bits, 32, "f16")))
        w = Weights()
        raw, deq = encode(RNG.standard_normal((n, k)) * 0.5, fmt)
        wsrc, wt = w.add(raw), weight_type((n, k), fmt)
        gamma = RNG.standard_normal(k).astype(np.float32)
        gsrc = w.add(gamma.tobytes())
        mlir = (
            "func.func @f(%%x: tensor<?x%(k)dxf32>, %%a: tensor<?x%(k)dxf32>) -> (tensor<?x%(n)dxf32>, "
            "tensor<?x%(k)dxf32>, tensor<?x%(n)dxf32>, tensor<?x%(k)dxf32>, tensor<?x%(n)dxf32>) "
            "attributes {kiln.max_tokens = 8} {\n"
            "  %%w = kiln.weight %(w)s -> %(t)s\n"
            "  %%g = kiln.weight %(g)s -> !kiln.weight<%(k)dxf32>\n"
            "  %%y0 = kiln.linear %%x, %%w : tensor<?x%(k)dxf32>, %(t)s -> tensor<?x%(n)dxf32>\n"
            "  %%h = kiln.rms_norm %%x, %%g {epsilon = 1.0e-5 : f32} : tensor<?x%(k)dxf32>, "
            "!kiln.weight<%(k)dxf32> -> tensor<?x%(k)dxf32>\n"
            "  %%y1 = kiln.linear %%h, %%w : tensor<?x%(k)dxf32>, %(t)s -> tensor<?x%(n)dxf32>\n"
            "  %%m = kiln.mul %%x, %%a : tensor<?x%(k)dxf32>\n"
            "  %%y2 = kiln.linear %%m, %%w : tensor<?x%(k)dxf32>, %(t)s -> tensor<?x%(n)dxf32>\n"
            "  return %%y0, %%h, %%y1, %%m, %%y2 : tensor<?x%(n)dxf32>, tensor<?x%(k)dxf32>, "
            "tensor<?x%(n)dxf32>, tensor<?x%(k)dxf32>, tensor<?x%(n)dxf32>\n}\n") % dict(
                k=k, n=n, w=wsrc, t=wt, g=gsrc)
        x = (RNG.standard_normal((tokens, k)) * 2).astype(np.float32)
        a = RNG.standard_normal((tokens, k)).astype(np.float32)
        outs = [np.zeros((tokens, d), dtype=np.float32) for d in (n, k, n, k, n)]
        run(mlir, "f", [x, a], outs, w, threads, activations="int%d" % bits, cpu=cpu)
        y0, h, y1, m, y2 = outs
        for name, inp, y in [("linear", x, y0), ("rms_norm", h, y1), ("mul", m, y2)]:
            q, dh, sums = quantize_q8(inp, bits)
            want = (q * dh).reshape(tokens, k) @ deq.T
            # Formats with a min use the stored code sum.
            want += (sums - dh[..., 0] * q.sum(-1)) @ block_mins(raw, fmt, n, k).T
            label = "W%dA%d %s %s T=%d threads=%d" % (bits, bits, name, cpu, tokens, threads)
            ok &= check(label, y, want, 1e-5)
            print("%s: rel. error vs the float product %.3g" % (
                label, rel_error(y, inp.astype(np.float64) @ deq.T)))
    return ok


def check_linear_int8_extremes():
    """The largest sums the AVX2 kernels add in 16 bits (CPUTarget's
    emitByteDots: vpmaddubsw pair sums of 2..7-bit codes added before one
    vpmaddwd): every code of Kiln's packed weights at its top, 2^b - 1, and
    every activation code +127 (token 0) or -127 (token 1); random scales
    and zeros per group. Too many sums in 16 bits would wrap."""
    ok = True
    n, k, tokens = 32, 128, 2
    x = np.repeat(np.array([[1.0], [-1.0]], np.float32), k, axis=1)
    for bits in range(2, 8):
        for p in (Packed(bits, 32, "f16"), Packed(bits, 64, "f16", "f16")):
            groups = n * k // p.group
            scale = float_bytes(RNG.uniform(0.5, 2.0, groups), p.scale)[0]
            zero = [float_bytes(RNG.uniform(-1.0, 1.0, groups), p.zero)[0]] if p.zero else []
            codes = np.full((groups, p.group * bits // 8), 0xFF, np.uint8)
            blocks = np.concatenate([scale] + zero + [codes], axis=1)
            deq = packed_decode(blocks, p, (n, k))
            fmt = "p%dg%d_%s%s" % (bits, p.group, p.scale, "_z" + p.zero if p.zero else "")
            SCHEMES.setdefault(fmt, (p.scheme(), p))
            for cpu in ("x86-64-v3", "x86-64-v4", "generic"):
                w = Weights()
                mlir = linear_module(w, blocks.tobytes(), weight_type((n, k), fmt), n, k)
                y = np.zeros((tokens, n), dtype=np.float32)
                run(mlir, "f", [x], [y], w, 1, activations="int8", cpu=cpu)
                q, dh, s = quantize_q8(x)
                want = (q * dh).reshape(tokens, k) @ deq.T
                want += (s - dh[..., 0] * q.sum(-1)) @ block_mins(blocks.tobytes(), fmt, n, k).T
                ok &= check("linear int8 extremes %s %s" % (cpu, fmt), y, want, 1e-5)
    return ok


def check_linear_narrow():
    """Output widths that are not a multiple of 16 (a classifier's 10-class
    head): f32 weights (K = 48, a multiple of the f32 kernel's 16) and Kiln's
    packed 8- and 5-bit weights with 8- and 5-bit activations, which keep
    their row-at-a-time kernels (rows16 writes 16 rows at a time; ggml
    blocks go to rows16: still refused)."""
    ok = True
    cases = [("f32", "f32", 48, "generic", 3, 1), ("f32", "f32", 48, "x86-64-v4", 6, 2),
             ("p8g32_f16", "int8", 64, "x86-64-v4", 5, 2), ("p8g32_f16", "int8", 96, "generic", 1, 3),
             # 8-bit codes up to 255: AVX2's 16-bit pair sums would saturate.
             ("p8g32_f16", "int8", 64, "x86-64-v3", 5, 2),
             ("p5g32_f16", "int5", 64, "x86-64-v4", 7, 2), ("p5g32_f16", "int5", 64, "generic", 2, 1)]
    for fmt, activations, k, cpu, tokens, threads in cases:
        for n in (10, 3):
            if fmt.startswith("p"):
                bits = int(fmt[1])
                SCHEMES.setdefault(fmt, (Packed(bits, 32, "f16").scheme(), Packed(bits, 32, "f16")))
            w = Weights()
            raw, deq = encode(RNG.standard_normal((n, k)) * 0.5, fmt)
            wsrc, wt = w.add(raw), weight_type((n, k), fmt)
            bv = RNG.standard_normal(n).astype(np.float32)
            bsrc = w.add(bv.tobytes())
            mlir = (
                "func.func @f(%%x: tensor<?x%(k)dxf32>) -> tensor<?x%(n)dxf32> attributes {kiln.max_tokens = 8} {\n"
                "  %%w = kiln.weight %(w)s -> %(t)s\n"
                "  %%b = kiln.weight %(b)s -> !kiln.weight<%(n)dxf32>\n"
                "  %%y = kiln.linear %%x, %%w, bias %%b : tensor<?x%(k)dxf32>, %(t)s, !kiln.weight<%(n)dxf32> "
                "-> tensor<?x%(n)dxf32>\n"
                "  return %%y : tensor<?x%(n)dxf32>\n}\n") % dict(k=k, n=n, w=wsrc, t=wt, b=bsrc)
            x = RNG.standard_normal((tokens, k)).astype(np.float32)
            y = np.zeros((tokens, n), dtype=np.float32)
            run(mlir, "f", [x], [y], w, threads, activations=activations, cpu=cpu)
            xs = x.astype(np.float64)
            want = xs @ deq.T + bv
            if activations != "f32":
                q, dh, sums = quantize_q8(x, int(activations[3:]))
                want = (q * dh).reshape(tokens, k) @ deq.T + bv
                want += (sums - dh[..., 0] * q.sum(-1)) @ block_mins(raw, fmt, n, k).T
            ok &= check("linear N=%d %s %s %s K=%d T=%d threads=%d" % (
                n, fmt, activations, cpu, k, tokens, threads), y, want, 1e-5)
    return ok


def prune_2_4(values):
    """Magnitude 2:4: zeroes the two smallest |w| of every run of 4 along K."""
    runs = values.reshape(-1, 4).copy()
    smallest = np.argsort(np.abs(runs), axis=1)[:, :2]
    np.put_along_axis(runs, smallest, 0.0, axis=1)
    return runs.reshape(values.shape)


def check_linear_sparse_int8():
    """Q4_0 and Q8_0 weights pruned 2:4 and marked as kiln-prune leaves them:
    kiln-compile stores them compressed (the weights file must shrink to
    14 or 22 bytes per block) and the sparse kernels multiply them."""
    ok = True
    # Token counts: one; below, at and past a tile of 8; past a chunk of 64.
    cases = [("generic", 1, 1), ("generic", 5, 2), ("generic", 9, 2),
             ("x86-64-v4", 1, 1), ("x86-64-v4", 1, 3), ("x86-64-v4", 6, 2),
             ("x86-64-v4", 70, 3), ("x86-64-v3", 1, 2), ("x86-64-v3", 5, 1),
             ("x86-64-v3", 17, 2)]
    mark = ", sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>"
    for fmt, block_bytes in [("q4_0", 14), ("q8_0", 22)]:
        for (n, k) in [(64, 64), (48, 384)]:
            # One weight per shape: cases on the same code variant share a compile.
            raw, deq = encode(prune_2_4(RNG.standard_normal((n, k)) * 0.5), fmt)
            bv = RNG.standard_normal(n).astype(np.float32)
            for cpu, tokens, threads in cases:
                w = Weights()
                bias = tokens == 5
                wt = weight_type((n, k), fmt)[:-1] + mark + ">"
                mlir = linear_module(w, raw, wt, n, k, bv if bias else None, max_tokens=80)
                x = RNG.standard_normal((tokens, k)).astype(np.float32)
                y = np.zeros((tokens, n), dtype=np.float32)
                compiled = compile_once(mlir, w, "int8", cpu)
                compiled.call("f", [x], [y], threads=threads)
                # The weight (first in the file) and the bias (64-byte aligned after it).
                stored = compiled.packed_bytes
                compressed = n * k // 32 * block_bytes
                want_bytes = compressed + ((-compressed) % 64 + 4 * n if bias else 0)
                q, dh, _ = quantize_q8(x)
                want = (q * dh).reshape(tokens, k) @ deq.T + (bv if bias else 0)
                name = "linear 2:4 int8 %s %s %dx%d T=%d threads=%d%s" % (
                    cpu, fmt, n, k, tokens, threads, " bias" if bias else "")
                if stored != want_bytes:
                    print("%s: %d weight bytes stored, %d expected compressed FAIL" % (name, stored, want_bytes))
                    ok = False
                ok &= check(name, y, want, 1e-5)
    return ok


def prune_unstructured(values, rate):
    """Magnitude pruning at `rate`: zeroes the smallest |w| of the whole
    matrix (kiln-prune pattern=unstructured)."""
    flat = values.reshape(-1).copy()
    flat[np.argsort(np.abs(flat), kind="stable")[:int(round(rate * flat.size))]] = 0.0
    return flat.reshape(values.shape)


def bitmap_bytes(raw, fmt, n, k):
    """Bytes of the bitmap arrangement of these Q4_0/Q8_0 blocks
    (WeightLayout.h, bitmapWeightBytes), counted from the codes: per group
    of 16 rows, block and plane of 4 values, each quarter of 4 rows keeps
    its non-zero codes, Q4_0 an even number of them."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(n, k // 32, -1)
    if fmt == "q8_0":
        nonzero = blocks[:, :, 2:] != 0
    else:
        qs = blocks[:, :, 2:]
        nonzero = np.concatenate([(qs & 15) != 8, (qs >> 4) != 8], axis=-1)
    # [group, row in group, block, plane, value] -> [group, block, plane, quarter]
    per_quarter = nonzero.reshape(n // 16, 4, 4, k // 32, 8, 4).sum(axis=(2, 5))
    if fmt == "q4_0":
        per_quarter += per_quarter % 2
    bits = 4 if fmt == "q4_0" else 8
    stored = int(per_quarter.sum())
    return n // 16 * 8 + n // 16 * (k // 32) * 96 + stored * bits // 8 + 16, stored


def check_linear_unstructured_int8():
    """Q4_0 and Q8_0 weights pruned unstructured and marked as kiln-prune
    leaves them (`kind = bitmap, dense = true`). kiln-compile
    --unstructured=bitmap stores them bitmap compressed (the weights file
    must hold bitmapWeightBytes) and the bitmap kernels multiply them; by
    default (auto) the compiler keeps them dense where the bitmap kernel
    measured slower (everywhere so far): rows16 bytes, the dense kernels. One
    compile per case; the token counts (one; below, at and past a tile of 8;
    past a chunk of 64) and thread counts share it."""
    ok = True
    calls = [(1, 1), (5, 2), (9, 3), (70, 2)]
    cases = [("q4_0", 0.5, (48, 384), "generic", True, "bitmap"),
             ("q4_0", 0.5, (48, 384), "x86-64-v3", True, "bitmap"),
             ("q4_0", 0.75, (32, 96), "x86-64-v4", False, "bitmap"),
             ("q8_0", 0.5, (32, 96), "generic", False, "bitmap"),
             ("q8_0", 0.5, (32, 96), "x86-64-v3", True, "bitmap"),
             ("q8_0", 0.5, (48, 384), "x86-64-v4", True, "bitmap"),
             ("q4_0", 0.5, (32, 96), "x86-64-v3", False, "auto"),
             ("q8_0", 0.5, (32, 96), "x86-64-v4", True, "auto")]
    for fmt, rate, (n, k), cpu, bias, storage in cases:
        w = Weights()
        raw, deq = encode(prune_unstructured(RNG.standard_normal((n, k)) * 0.5, rate), fmt)
        nnz = int(np.count_nonzero(deq))
        wt = weight_type((n, k), fmt)[:-1] + ", sparsity = #kiln.sparsity<kind = bitmap, nnz = %d, dense = true>>" % nnz
        bv = RNG.standard_normal(n).astype(np.float32)
        mlir = linear_module(w, raw, wt, n, k, bv if bias else None, max_tokens=80)
        if storage == "bitmap":
            stored, codes = bitmap_bytes(raw, fmt, n, k)
            form = "bitmap, %d codes" % codes
        else:
            # The dense fallback: rows16, per 16 rows the blocks' scales
            # (padded to 64 bytes), then 32 codes a row and block.
            bits = 4 if fmt == "q4_0" else 8
            headers = (k // 32 * 32 + 63) // 64 * 64
            stored, form = n // 16 * (headers + k // 32 * 16 * 32 * bits // 8), "dense rows16"
        want_bytes = stored + ((-stored) % 64 + 4 * n if bias else 0)
        compiled = compile_once(mlir, w, "int8", cpu, ["--unstructured=" + storage])
        # The weight (first in the file) and the bias (64-byte aligned after it).
        stored_bytes = compiled.packed_bytes
        name = "linear unstructured %g int8 %s %s %dx%d%s %s" % (
            rate, cpu, fmt, n, k, " bias" if bias else "", storage)
        print("%s: %d bytes stored (%s; %d dense) %s" % (
            name, stored_bytes, form, len(raw),
            "ok" if stored_bytes == want_bytes else "FAIL: %d expected" % want_bytes))
        ok &= stored_bytes == want_bytes
        for tokens, threads in calls if storage == "bitmap" else calls[::2]:
            x = RNG.standard_normal((tokens, k)).astype(np.float32)
            y = np.zeros((tokens, n), dtype=np.float32)
            compiled.call("f", [x], [y], threads=threads)
            q, dh, _ = quantize_q8(x)
            want = (q * dh).reshape(tokens, k) @ deq.T + (bv if bias else 0)
            ok &= check("%s T=%d threads=%d" % (name, tokens, threads), y, want, 1e-5)
    return ok


def check_embedding():
    ok = True
    for fmt in [f for f in SCHEMES if f not in INT8_ONLY]:
        vocab, dim = 50, embedding_dim(fmt)
        w = Weights()
        raw, deq = encode(RNG.standard_normal((vocab, dim)), fmt)
        wsrc = w.add(raw)
        wt = weight_type((vocab, dim), fmt)
        mlir = (
            "func.func @f(%%ids: tensor<?xi32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
            "  %%w = kiln.weight %s -> %s\n"
            "  %%y = kiln.embedding %%w[%%ids] : %s, tensor<?xi32> -> tensor<?x%dxf32>\n"
            "  return %%y : tensor<?x%dxf32>\n}\n") % (dim, wsrc, wt, wt, dim, dim)
        ids = np.array([3, 0, 49, 17, 3], dtype=np.int32)
        y = np.zeros((len(ids), dim), dtype=np.float32)
        run(mlir, "f", [ids], [y], w, 2)
        ok &= check("embedding %s" % fmt, y, deq[ids], 1e-6)
    # Scaled rows (Gemma's sqrt(dim)); a generator of its own leaves the
    # other checks' data as it was.
    rng = np.random.default_rng(4321)
    for fmt in ["f32", "q8_0"]:
        vocab, dim, scale = 50, embedding_dim(fmt), 25.298221
        w = Weights()
        raw, deq = encode(rng.standard_normal((vocab, dim)), fmt)
        wsrc = w.add(raw)
        wt = weight_type((vocab, dim), fmt)
        mlir = (
            "func.func @f(%%ids: tensor<?xi32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
            "  %%w = kiln.weight %s -> %s\n"
            "  %%y = kiln.embedding %%w[%%ids] {scale = %r : f32} : %s, tensor<?xi32> -> tensor<?x%dxf32>\n"
            "  return %%y : tensor<?x%dxf32>\n}\n") % (dim, wsrc, wt, scale, wt, dim, dim)
        ids = np.array([3, 0, 49, 17], dtype=np.int32)
        y = np.zeros((len(ids), dim), dtype=np.float32)
        run(mlir, "f", [ids], [y], w, 2)
        ok &= check("embedding %s scale=%g" % (fmt, scale), y, deq[ids] * np.float32(scale), 1e-6)
    return ok


def check_norm():
    ok = True
    dim, eps = 96, 1e-5
    for kind in ["rms", "layer", "layer_bias"]:
        for tokens, threads in [(1, 1), (7, 2)]:
            w = Weights()
            gamma = RNG.standard_normal(dim).astype(np.float32)
            beta = RNG.standard_normal(dim).astype(np.float32)
            gsrc, bsrc = w.add(gamma.tobytes()), w.add(beta.tobytes())
            wt = "!kiln.weight<%dxf32>" % dim
            x = (RNG.standard_normal((tokens, dim)) * 3 + 1).astype(np.float32)
            xd = x.astype(np.float64)
            if kind == "rms":
                op = "kiln.rms_norm %%x, %%g {epsilon = %e : f32} : tensor<?x%dxf32>, %s -> tensor<?x%dxf32>" % (eps, dim, wt, dim)
                want = xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + eps) * gamma
            else:
                bias = kind == "layer_bias"
                op = "kiln.layer_norm %%x, %%g%s {epsilon = %e : f32} : tensor<?x%dxf32>, %s%s -> tensor<?x%dxf32>" % (
                    ", bias %b" if bias else "", eps, dim, wt, (", " + wt) if bias else "", dim)
                mu = xd.mean(-1, keepdims=True)
                want = (xd - mu) / np.sqrt(((xd - mu) ** 2).mean(-1, keepdims=True) + eps) * gamma + (beta if bias else 0)
            mlir = (
                "func.func @f(%%x: tensor<?x%dxf32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
                "  %%g = kiln.weight %s -> %s\n  %%b = kiln.weight %s -> %s\n"
                "  %%y = %s\n  return %%y : tensor<?x%dxf32>\n}\n") % (dim, dim, gsrc, wt, bsrc, wt, op, dim)
            y = np.zeros_like(x)
            run(mlir, "f", [x], [y], w, threads)
            ok &= check("%s_norm T=%d threads=%d" % (kind, tokens, threads), y, want, 1e-5)
    # Per-head RMS norm (Gemma 3's q/k norms): [T, heads * hd] viewed as
    # [T, heads, hd], normalized over hd, viewed back.
    rng = np.random.default_rng(8765)
    heads, hd = 3, 32
    for tokens, threads in [(1, 1), (5, 2)]:
        w = Weights()
        gamma = rng.standard_normal(hd).astype(np.float32)
        gsrc = w.add(gamma.tobytes())
        x = (rng.standard_normal((tokens, heads * hd)) * 3 + 1).astype(np.float32)
        mlir = (
            "func.func @f(%%x: tensor<?x%(w)dxf32>) -> tensor<?x%(w)dxf32> attributes {kiln.max_tokens = 8} {\n"
            "  %%g = kiln.weight %(g)s -> !kiln.weight<%(hd)dxf32>\n"
            "  %%c0 = arith.constant 0 : index\n"
            "  %%t = tensor.dim %%x, %%c0 : tensor<?x%(w)dxf32>\n"
            "  %%x3 = tensor.expand_shape %%x [[0], [1, 2]] output_shape [%%t, %(h)d, %(hd)d] : tensor<?x%(w)dxf32> into tensor<?x%(h)dx%(hd)dxf32>\n"
            "  %%y3 = kiln.rms_norm %%x3, %%g {epsilon = 1.0e-6 : f32} : tensor<?x%(h)dx%(hd)dxf32>, !kiln.weight<%(hd)dxf32> -> tensor<?x%(h)dx%(hd)dxf32>\n"
            "  %%y = tensor.collapse_shape %%y3 [[0], [1, 2]] : tensor<?x%(h)dx%(hd)dxf32> into tensor<?x%(w)dxf32>\n"
            "  return %%y : tensor<?x%(w)dxf32>\n}\n") % dict(w=heads * hd, h=heads, hd=hd, g=gsrc)
        xd = x.astype(np.float64).reshape(tokens, heads, hd)
        want = (xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + 1e-6) * gamma).reshape(tokens, -1)
        y = np.zeros_like(x)
        run(mlir, "f", [x], [y], w, threads)
        ok &= check("rms_norm per head %dx%d T=%d threads=%d" % (heads, hd, tokens, threads), y, want, 1e-5)
    return ok


def check_norm_linear_int8():
    """A norm read by two int8 linear layers: the norm kernel quantizes its
    output for both. Checked against quantize_q8 of the norm's own output."""
    ok = True
    dim, eps = 96, 1e-5
    for cpu, tokens, threads in [("x86-64-v4", 1, 2), ("x86-64-v4", 9, 2), ("generic", 3, 1)]:
        w = Weights()
        gamma = RNG.standard_normal(dim).astype(np.float32)
        gsrc = w.add(gamma.tobytes())
        mats = []
        for fmt, n in [("q4_0", 64), ("q8_0", 32)]:
            raw, deq = encode(RNG.standard_normal((n, dim)) * 0.5, fmt)
            mats.append((w.add(raw), weight_type((n, dim), fmt), deq, n))
        (s0, t0, d0, n0), (s1, t1, d1, n1) = mats
        mlir = (
            "func.func @f(%%x: tensor<?x%dxf32>) -> (tensor<?x%dxf32>, tensor<?x%dxf32>, tensor<?x%dxf32>) "
            "attributes {kiln.max_tokens = 16} {\n"
            "  %%g = kiln.weight %s -> !kiln.weight<%dxf32>\n"
            "  %%w0 = kiln.weight %s -> %s\n  %%w1 = kiln.weight %s -> %s\n"
            "  %%h = kiln.rms_norm %%x, %%g {epsilon = %e : f32} : tensor<?x%dxf32>, !kiln.weight<%dxf32> -> tensor<?x%dxf32>\n"
            "  %%y0 = kiln.linear %%h, %%w0 : tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
            "  %%y1 = kiln.linear %%h, %%w1 : tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
            "  return %%h, %%y0, %%y1 : tensor<?x%dxf32>, tensor<?x%dxf32>, tensor<?x%dxf32>\n}\n") % (
            dim, dim, n0, n1, gsrc, dim, s0, t0, s1, t1, eps, dim, dim, dim, dim, t0, n0, dim, t1, n1,
            dim, n0, n1)
        x = (RNG.standard_normal((tokens, dim)) * 3 + 1).astype(np.float32)
        h = np.zeros_like(x)
        y0 = np.zeros((tokens, n0), dtype=np.float32)
        y1 = np.zeros((tokens, n1), dtype=np.float32)
        run(mlir, "f", [x], [h, y0, y1], w, threads, activations="int8", cpu=cpu)
        xd = x.astype(np.float64)
        want_h = xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + eps) * gamma
        ok &= check("rms_norm+q8 %s T=%d threads=%d norm" % (cpu, tokens, threads), h, want_h, 1e-5)
        q, dh, _ = quantize_q8(h)
        xq = (q * dh).reshape(tokens, dim)
        ok &= check("rms_norm+q8 %s T=%d threads=%d q4_0" % (cpu, tokens, threads), y0, xq @ d0.T, 1e-5)
        ok &= check("rms_norm+q8 %s T=%d threads=%d q8_0" % (cpu, tokens, threads), y1, xq @ d1.T, 1e-5)
    return ok


def check_mlp_int8():
    """A pre-norm gated MLP with its residual, as in a transformer block:
    norm -> gate, up -> swiglu -> down + x. The norm and the swiglu quantize
    their outputs for the next linear layers and the down projection adds
    the residual; each stage is checked from the previous stage's output."""
    ok = True
    dim, hidden, eps = 64, 96, 1e-5
    for cpu, tokens, threads in [("x86-64-v4", 1, 2), ("x86-64-v4", 11, 3), ("x86-64-v3", 2, 2),
                                 ("generic", 3, 1)]:
        w = Weights()
        gamma = RNG.standard_normal(dim).astype(np.float32)
        gsrc = w.add(gamma.tobytes())
        mats = {}
        for name, fmt, shape in [("gate", "q4_1", (hidden, dim)), ("up", "q5_0", (hidden, dim)),
                                 ("down", "q8_0", (dim, hidden))]:
            raw, deq = encode(RNG.standard_normal(shape) * 0.5, fmt)
            mats[name] = (w.add(raw), weight_type(shape, fmt), deq)
        t = {k: v[1] for k, v in mats.items()}
        mlir = (
            "func.func @f(%%x: tensor<?x{d}xf32>) -> (tensor<?x{d}xf32>, tensor<?x{h}xf32>, tensor<?x{d}xf32>) "
            "attributes {{kiln.max_tokens = 16}} {{\n"
            "  %%g = kiln.weight %s -> !kiln.weight<{d}xf32>\n"
            "  %%wg = kiln.weight %s -> {tg}\n  %%wu = kiln.weight %s -> {tu}\n  %%wd = kiln.weight %s -> {td}\n"
            "  %%n = kiln.rms_norm %%x, %%g {{epsilon = {e} : f32}} : tensor<?x{d}xf32>, !kiln.weight<{d}xf32> -> tensor<?x{d}xf32>\n"
            "  %%a = kiln.linear %%n, %%wg : tensor<?x{d}xf32>, {tg} -> tensor<?x{h}xf32>\n"
            "  %%b = kiln.linear %%n, %%wu : tensor<?x{d}xf32>, {tu} -> tensor<?x{h}xf32>\n"
            "  %%s = kiln.swiglu %%a, %%b : tensor<?x{h}xf32>\n"
            "  %%o = kiln.linear %%s, %%wd : tensor<?x{h}xf32>, {td} -> tensor<?x{d}xf32>\n"
            "  %%z = kiln.add %%x, %%o : tensor<?x{d}xf32>\n"
            "  return %%n, %%s, %%z : tensor<?x{d}xf32>, tensor<?x{h}xf32>, tensor<?x{d}xf32>\n}}\n"
        ).format(d=dim, h=hidden, e="%e" % eps, tg=t["gate"], tu=t["up"], td=t["down"]) % (
            gsrc, mats["gate"][0], mats["up"][0], mats["down"][0])
        x = RNG.standard_normal((tokens, dim)).astype(np.float32)
        n = np.zeros_like(x)
        sw = np.zeros((tokens, hidden), dtype=np.float32)
        z = np.zeros_like(x)
        run(mlir, "f", [x], [n, sw, z], w, threads, activations="int8", cpu=cpu)
        xd = x.astype(np.float64)
        name = "mlp int8 %s T=%d threads=%d" % (cpu, tokens, threads)
        ok &= check(name + " norm", n, xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + eps) * gamma, 1e-5)
        q, dh, sq = quantize_q8(n)
        xq = (q * dh).reshape(tokens, dim)
        a = xq @ mats["gate"][2].T + (sq - dh[..., 0] * q.sum(-1)) @ block_mins(
            open_raw(w, mats["gate"][0]), "q4_1", hidden, dim).T
        bb = xq @ mats["up"][2].T
        ok &= check(name + " swiglu", sw, a / (1 + np.exp(-a)) * bb, 1e-5)
        q, dh, _ = quantize_q8(sw)
        ok &= check(name + " down+residual", z, xd + (q * dh).reshape(tokens, hidden) @ mats["down"][2].T, 1e-5)
    return ok


def open_raw(weights, src):
    """The bytes of a weight added to `weights`, from its #kiln.external text."""
    offset, size = [int(v) for v in re.findall(r"= (\d+)", src)]
    return bytes(weights.data[offset:offset + size])


def check_tied_embedding_int8():
    """An embedding table that is also the output layer (tied), scaled as
    Gemma's: with int8 activations it is packed to rows16 once and the
    embedding gathers rows from the packed form."""
    ok = True
    for fmt in INT_FORMATS:
        vocab, dim = 48, embedding_dim(fmt)
        w = Weights()
        raw, deq = encode(RNG.standard_normal((vocab, dim)) * 0.5, fmt)
        src, wt = w.add(raw), weight_type((vocab, dim), fmt)
        mlir = (
            "func.func @f(%%ids: tensor<?xi32>) -> (tensor<?x%dxf32>, tensor<?x%dxf32>) attributes {kiln.max_tokens = 8} {\n"
            "  %%w = kiln.weight %s -> %s\n"
            "  %%e = kiln.embedding %%w[%%ids] {scale = 1.5 : f32} : %s, tensor<?xi32> -> tensor<?x%dxf32>\n"
            "  %%y = kiln.linear %%e, %%w : tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
            "  return %%e, %%y : tensor<?x%dxf32>, tensor<?x%dxf32>\n}\n") % (
            dim, vocab, src, wt, wt, dim, dim, wt, vocab, dim, vocab)
        ids = np.array([0, 47, 5, 16, 31, 17], dtype=np.int32)
        e = np.zeros((len(ids), dim), dtype=np.float32)
        y = np.zeros((len(ids), vocab), dtype=np.float32)
        run(mlir, "f", [ids], [e, y], w, 2, activations="int8", cpu="x86-64-v4")
        ok &= check("tied embedding int8 %s" % fmt, e, 1.5 * deq[ids], 1e-6)
    return ok


def rope_reference(x, pos, heads, head_dim, rot, neox, base, scale, factors=None, magnitude=1.0):
    out = x.astype(np.float64).copy()
    t_count = x.shape[0]
    for t in range(t_count):
        for h in range(heads):
            for i in range(rot // 2):
                theta = (pos + t) * scale * (factors[i] if factors is not None else 1.0) * base ** (-2.0 * i / rot)
                a = h * head_dim + (i if neox else 2 * i)
                c = a + (rot // 2 if neox else 1)
                x0, x1 = x[t, a], x[t, c]
                out[t, a] = magnitude * (x0 * math.cos(theta) - x1 * math.sin(theta))
                out[t, c] = magnitude * (x0 * math.sin(theta) + x1 * math.cos(theta))
    return out


def check_rope():
    ok = True
    for style in ["llama", "neox"]:
        for rot in [64, 32]:
            heads, hd, pos, base = 3, 64, 37, 10000.0
            width = heads * hd
            mlir = (
                "func.func @f(%%x: tensor<?x%dxf32>, %%p: index) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
                "  %%y = kiln.rope %%x, %%p {num_heads = %d, head_dim = %d, rotary_dim = %d, style = #kiln.rope_style<%s>, freq_base = %.1f : f32} : tensor<?x%dxf32> -> tensor<?x%dxf32>\n"
                "  return %%y : tensor<?x%dxf32>\n}\n") % (width, width, heads, hd, rot, style, base, width, width, width)
            x = RNG.standard_normal((5, width)).astype(np.float32)
            y = np.zeros_like(x)
            run(mlir, "f", [x, pos], [y], Weights(), 2)
            want = rope_reference(x, pos, heads, hd, rot, style == "neox", base, 1.0)
            # f32 angles of up to ~40 radians: cos/sin inputs carry ~4e-6 error.
            ok &= check("rope %s rotary_dim=%d" % (style, rot), y, want, 2e-5)
    return ok


def check_linear_rope_int8():
    """A projection followed by RoPE: llama-style pairs are rotated in the
    rows16 kernel's epilogue, NeoX ones by the rope kernel. Checked against
    the rotation of the exact product of the quantized activations. An f32
    projection takes kiln-fuse's rope epilogue too, but its kernel has none:
    it rotates the product in place after it."""
    ok = True
    heads, hd, pos, base, k = 3, 64, 37, 10000.0, 96
    width = heads * hd
    for style, fmt in [("llama", "q8_0"), ("neox", "q8_0"), ("llama", "f32")]:
        for cpu, tokens, threads in [("x86-64-v4", 1, 2), ("x86-64-v4", 10, 3), ("generic", 3, 1)]:
            w = Weights()
            raw, deq = encode(RNG.standard_normal((width, k)) * 0.5, fmt)
            wsrc, wt = w.add(raw), weight_type((width, k), fmt)
            mlir = (
                "func.func @f(%%x: tensor<?x%dxf32>, %%p: index) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 16} {\n"
                "  %%w = kiln.weight %s -> %s\n"
                "  %%q = kiln.linear %%x, %%w : tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
                "  %%y = kiln.rope %%q, %%p {num_heads = %d, head_dim = %d, rotary_dim = %d, style = #kiln.rope_style<%s>, freq_base = %.1f : f32} : tensor<?x%dxf32> -> tensor<?x%dxf32>\n"
                "  return %%y : tensor<?x%dxf32>\n}\n") % (
                k, width, wsrc, wt, k, wt, width, heads, hd, hd, style, base, width, width, width)
            x = RNG.standard_normal((tokens, k)).astype(np.float32)
            y = np.zeros((tokens, width), dtype=np.float32)
            run(mlir, "f", [x, pos], [y], w, threads, activations="int8", cpu=cpu)
            if fmt == "f32":
                product = x.astype(np.float64) @ deq.T
            else:
                q, dh, _ = quantize_q8(x)
                product = (q * dh).reshape(tokens, k) @ deq.T
            want = rope_reference(product, pos, heads, hd, hd, style == "neox", base, 1.0)
            # f32 angles, as in check_rope.
            ok &= check("linear+rope int8 %s %s %s T=%d threads=%d" % (fmt, style, cpu, tokens, threads), y, want, 2e-5)
    return ok


def attention_reference(q, k_all, v_all, pos, tokens, heads, kv_heads, hd, scale, causal, window, softcap):
    out = np.zeros((tokens, heads * hd))
    group = heads // kv_heads
    for t in range(tokens):
        end = pos + t + 1 if causal else pos + tokens
        start = max(0, end - window) if window else 0
        for h in range(heads):
            g = h // group
            qv = q[t, h * hd:(h + 1) * hd].astype(np.float64)
            ks = k_all[start:end, g * hd:(g + 1) * hd].astype(np.float64)
            vs = v_all[start:end, g * hd:(g + 1) * hd].astype(np.float64)
            s = ks @ qv * scale
            if softcap:
                s = softcap * np.tanh(s / softcap)
            p = np.exp(s - s.max())
            out[t, h * hd:(h + 1) * hd] = (p / p.sum()) @ vs
    return out


def check_attention():
    ok = True
    layers, ctx, heads, kv_heads, hd = 2, 32, 6, 2, 32
    for causal, window, softcap in [(True, 0, 0.0), (False, 0, 0.0), (True, 4, 0.0), (True, 0, 5.0)]:
        for prev, tokens, threads in [(0, 5, 2), (9, 1, 1), (9, 3, 3), (20, 7, 2), (30, 1, 1)]:
            scale = 1 / math.sqrt(hd)
            qw, kvw = heads * hd, kv_heads * hd
            cache_t = "!kiln.kv_cache<%dx%dx%dx%dxf32>" % (layers, ctx, kv_heads, hd)
            mlir = (
                "func.func @f(%%q: tensor<?x%dxf32>, %%k: tensor<?x%dxf32>, %%v: tensor<?x%dxf32>, %%c: %s, %%p: index) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
                "  %%y = kiln.attention %%q, %%k, %%v, %%c[%%p] {layer = 1, num_heads = %d, scale = %r : f32, causal = %s, sliding_window = %d, softcap = %r : f32} : tensor<?x%dxf32>, tensor<?x%dxf32>, tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
                "  return %%y : tensor<?x%dxf32>\n}\n") % (
                qw, kvw, kvw, cache_t, qw, heads, scale, "true" if causal else "false", window, softcap,
                qw, kvw, kvw, cache_t, qw, qw)
            # Earlier positions already in the cache (layer 1), new ones passed in.
            k_all = RNG.standard_normal((prev + tokens, kvw)).astype(np.float32)
            v_all = RNG.standard_normal((prev + tokens, kvw)).astype(np.float32)
            cache = np.zeros((2, layers, ctx, kvw), dtype=np.float32)
            cache[0, 1, :prev] = k_all[:prev]
            cache[1, 1, :prev] = v_all[:prev]
            q = RNG.standard_normal((tokens, qw)).astype(np.float32)
            y = np.zeros_like(q)
            cache_bytes = cache.view(np.uint8).reshape(-1)
            run(mlir, "f", [q, k_all[prev:].copy(), v_all[prev:].copy(), cache_bytes, prev], [y], Weights(), threads)
            want = attention_reference(q, k_all, v_all, prev, tokens, heads, kv_heads, hd, scale, causal, window, softcap)
            name = "attention causal=%d window=%d softcap=%g prev=%d T=%d threads=%d" % (
                causal, window, softcap, prev, tokens, threads)
            ok &= check(name, y, want, 1e-5)
            stored = cache.view(np.float32)
            ok &= check(name + " cache", stored[0, 1, :prev + tokens], k_all, 0.0)
            ok &= check(name + " cache v", stored[1, 1, :prev + tokens], v_all, 0.0)
    return ok


def check_attention_batch():
    """One step over tokens of three sequences in their own KV slots (a
    slot-major cache of four), interleaved, at their own positions: each
    token's row equals attention over its own sequence alone."""
    ok = True
    layers, ctx, heads, kv_heads, hd, slots = 2, 32, 6, 2, 32, 4
    qw, kvw = heads * hd, kv_heads * hd
    scale = 1 / math.sqrt(hd)
    cache_t = "!kiln.kv_cache<%dx%dx%dx%dxf32>" % (layers, ctx, kv_heads, hd)
    # (slot, tokens already cached, new tokens); slot 3 stays empty.
    seqs = [(2, 9, 1), (0, 0, 3), (1, 20, 2)]
    order = [0, 1, 1, 2, 1, 2]  # which sequence each token of the step is
    for window, softcap, threads in [(0, 0.0, 2), (4, 0.0, 3), (0, 5.0, 1)]:
        mlir = (
            "func.func @f(%%q: tensor<?x%dxf32>, %%k: tensor<?x%dxf32>, %%v: tensor<?x%dxf32>, %%c: %s, %%s: tensor<?xi32>, %%p: tensor<?xi32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
            "  %%y = kiln.attention %%q, %%k, %%v, %%c[slots %%s, positions %%p : tensor<?xi32>, tensor<?xi32>] {layer = 1, num_heads = %d, scale = %r : f32, sliding_window = %d, softcap = %r : f32} : tensor<?x%dxf32>, tensor<?x%dxf32>, tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
            "  return %%y : tensor<?x%dxf32>\n}\n") % (
            qw, kvw, kvw, cache_t, qw, heads, scale, window, softcap, qw, kvw, kvw, cache_t, qw, qw)
        cache = np.zeros((slots, 2, layers, ctx, kvw), dtype=np.float32)
        k_seq, v_seq = [], []
        for slot, prev, new in seqs:
            k_seq.append(RNG.standard_normal((prev + new, kvw)).astype(np.float32))
            v_seq.append(RNG.standard_normal((prev + new, kvw)).astype(np.float32))
            cache[slot, 0, 1, :prev] = k_seq[-1][:prev]
            cache[slot, 1, 1, :prev] = v_seq[-1][:prev]
        step_slots, step_pos, k, v, taken = [], [], [], [], [0] * len(seqs)
        for i in order:
            slot, prev, _ = seqs[i]
            p = prev + taken[i]
            taken[i] += 1
            step_slots.append(slot)
            step_pos.append(p)
            k.append(k_seq[i][p])
            v.append(v_seq[i][p])
        q = RNG.standard_normal((len(order), qw)).astype(np.float32)
        y = np.zeros_like(q)
        run(mlir, "f", [q, np.array(k), np.array(v), cache.view(np.uint8).reshape(-1),
                        np.array(step_slots, dtype=np.int32), np.array(step_pos, dtype=np.int32)],
            [y], Weights(), threads)
        name = "attention batch window=%d softcap=%g threads=%d" % (window, softcap, threads)
        for i, (slot, prev, new) in enumerate(seqs):
            rows = [t for t, s in enumerate(order) if s == i]
            want = attention_reference(q[rows], k_seq[i], v_seq[i], prev, new, heads, kv_heads, hd,
                                       scale, True, window, softcap)
            ok &= check(name + " seq %d (slot %d, at %d)" % (i, slot, prev), y[rows], want, 1e-5)
            ok &= check(name + " seq %d cache" % i, cache[slot, 0, 1, :prev + new], k_seq[i], 0.0)
            ok &= check(name + " seq %d cache v" % i, cache[slot, 1, 1, :prev + new], v_seq[i], 0.0)
        ok &= check(name + " empty slot untouched", cache[3], np.zeros_like(cache[3]), 0.0)
    return ok


def check_rope_batch():
    """kiln.rope with one position per token equals rope of each token alone."""
    ok = True
    heads, hd, base = 3, 64, 10000.0
    width = heads * hd
    positions = np.array([9, 0, 1, 20, 2, 21], dtype=np.int32)
    for style in ["llama", "neox"]:
        mlir = (
            "func.func @f(%%x: tensor<?x%dxf32>, %%p: tensor<?xi32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
            "  %%y = kiln.rope %%x, positions %%p : tensor<?xi32> {num_heads = %d, head_dim = %d, rotary_dim = %d, style = #kiln.rope_style<%s>, freq_base = %.1f : f32} : tensor<?x%dxf32> -> tensor<?x%dxf32>\n"
            "  return %%y : tensor<?x%dxf32>\n}\n") % (width, width, heads, hd, hd, style, base, width, width, width)
        x = RNG.standard_normal((len(positions), width)).astype(np.float32)
        y = np.zeros_like(x)
        run(mlir, "f", [x, positions], [y], Weights(), 2)
        want = np.concatenate([rope_reference(x[t:t + 1], int(p), heads, hd, hd, style == "neox", base, 1.0)
                               for t, p in enumerate(positions)])
        # f32 angles, as in check_rope.
        ok &= check("rope per-token positions %s" % style, y, want, 2e-5)
    # Llama 3 / YaRN scalings (per-frequency factors, a magnitude) with
    # per-token positions: the scaled table kernel reads each token's own.
    factors = np.linspace(1.0, 0.125, hd // 2).astype(np.float32)
    attrs = "freq_factors = array<f32: %s>, magnitude = 1.25 : f32" % ", ".join("%r" % float(f) for f in factors)
    mlir = (
        "func.func @f(%%x: tensor<?x%dxf32>, %%p: tensor<?xi32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
        "  %%y = kiln.rope %%x, positions %%p : tensor<?xi32> {num_heads = %d, head_dim = %d, rotary_dim = %d, style = #kiln.rope_style<neox>, freq_base = %.1f : f32, %s} : tensor<?x%dxf32> -> tensor<?x%dxf32>\n"
        "  return %%y : tensor<?x%dxf32>\n}\n") % (width, width, heads, hd, hd, base, attrs, width, width, width)
    x = RNG.standard_normal((len(positions), width)).astype(np.float32)
    y = np.zeros_like(x)
    run(mlir, "f", [x, positions], [y], Weights(), 2)
    want = np.concatenate([rope_reference(x[t:t + 1], int(p), heads, hd, hd, True, base, 1.0, factors, 1.25)
                           for t, p in enumerate(positions)])
    ok &= check("rope per-token positions scaled", y, want, 2e-5)
    return ok


def check_kernel_identity():
    """Ops that differ only in a constant the kernel bakes in (a rope base of
    10000.5 vs 10000, an attention scale or softcap) in one module, in two
    functions: each must run its own kernel, not the first one's."""
    ok = True
    heads, hd, pos, width = 3, 64, 37, 192
    bases = [10000.9, 10000.0]
    funcs = "".join(
        "func.func @rope%d(%%x: tensor<?x%dxf32>, %%p: index) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
        "  %%y = kiln.rope %%x, %%p {num_heads = %d, head_dim = %d, rotary_dim = %d, style = #kiln.rope_style<neox>, freq_base = %r : f32} : tensor<?x%dxf32> -> tensor<?x%dxf32>\n"
        "  return %%y : tensor<?x%dxf32>\n}\n" % (i, width, width, heads, hd, hd, base, width, width, width)
        for i, base in enumerate(bases))
    layers, ctx, kv_heads, ahd = 1, 16, 1, 32
    attn = [(0.25, 0.0), (0.125, 0.0), (0.125, 2.0)]
    cache_t = "!kiln.kv_cache<%dx%dx%dx%dxf32>" % (layers, ctx, kv_heads, ahd)
    qw, kvw = heads * ahd, kv_heads * ahd
    funcs += "".join(
        "func.func @attn%d(%%q: tensor<?x%dxf32>, %%k: tensor<?x%dxf32>, %%v: tensor<?x%dxf32>, %%c: %s, %%p: index) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
        "  %%y = kiln.attention %%q, %%k, %%v, %%c[%%p] {layer = 0, num_heads = %d, scale = %r : f32, causal = true, sliding_window = 0, softcap = %r : f32} : tensor<?x%dxf32>, tensor<?x%dxf32>, tensor<?x%dxf32>, %s -> tensor<?x%dxf32>\n"
        "  return %%y : tensor<?x%dxf32>\n}\n" % (
            i, qw, kvw, kvw, cache_t, qw, heads, scale, softcap, qw, kvw, kvw, cache_t, qw, qw)
        for i, (scale, softcap) in enumerate(attn))
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "weights.bin"), "wb").close()
        compiled = Compiled(funcs, d)
        x = RNG.standard_normal((5, width)).astype(np.float32)
        for i, base in enumerate(bases):
            y = np.zeros_like(x)
            compiled.call("rope%d" % i, [x, pos], [y])
            want = rope_reference(x, pos, heads, hd, hd, True, base, 1.0)
            ok &= check("one module: rope freq_base=%r" % base, y, want, 2e-5)
        tokens = 4
        q = RNG.standard_normal((tokens, qw)).astype(np.float32)
        k = RNG.standard_normal((tokens, kvw)).astype(np.float32)
        v = RNG.standard_normal((tokens, kvw)).astype(np.float32)
        for i, (scale, softcap) in enumerate(attn):
            cache = np.zeros(2 * layers * ctx * kvw * 4, dtype=np.uint8)
            y = np.zeros_like(q)
            compiled.call("attn%d" % i, [q, k, v, cache, 0], [y])
            want = attention_reference(q, k, v, 0, tokens, heads, kv_heads, ahd, scale, True, 0, softcap)
            ok &= check("one module: attention scale=%r softcap=%r" % (scale, softcap), y, want, 1e-5)
    return ok


def gelu(x, tanh_form):
    if tanh_form:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / math.sqrt(2)))


def check_elementwise():
    ok = True
    dim = 80
    silu = lambda v: v / (1 + np.exp(-v))
    cases = [
        ("add", True, "", lambda a, b: a + b),
        ("mul", True, "", lambda a, b: a * b),
        ("swiglu", True, "", lambda a, b: silu(a) * b),
        ("geglu", True, "", lambda a, b: gelu(a, True) * b),
        ("geglu", True, " {approximate = #kiln.gelu_approx<erf>}", lambda a, b: gelu(a, False) * b),
        ("silu", False, "", lambda a, b: silu(a)),
        ("relu", False, "", lambda a, b: np.maximum(a, 0)),
        ("gelu", False, "", lambda a, b: gelu(a, True)),
        ("gelu", False, " {approximate = #kiln.gelu_approx<erf>}", lambda a, b: gelu(a, False)),
    ]
    for op, binary, attrs, ref in cases:
        for tokens, threads in [(1, 2), (6, 3)]:
            args = "%a, %b" if binary else "%a"
            mlir = (
                "func.func @f(%%a: tensor<?x%dxf32>, %%b: tensor<?x%dxf32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
                "  %%y = kiln.%s %s%s : tensor<?x%dxf32>\n  return %%y : tensor<?x%dxf32>\n}\n") % (
                dim, dim, dim, op, args, attrs, dim, dim)
            a = (RNG.standard_normal((tokens, dim)) * 3).astype(np.float32)
            bb = RNG.standard_normal((tokens, dim)).astype(np.float32)
            y = np.zeros_like(a)
            run(mlir, "f", [a, bb], [y], Weights(), threads)
            ok &= check("%s%s T=%d threads=%d" % (op, attrs, tokens, threads), y,
                        ref(a.astype(np.float64), bb.astype(np.float64)), 1e-5)
    return ok


def check_softmax():
    dim = 64
    mlir = (
        "func.func @f(%%a: tensor<?x%dxf32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
        "  %%y = kiln.softmax %%a : tensor<?x%dxf32>\n  return %%y : tensor<?x%dxf32>\n}\n") % (dim, dim, dim, dim)
    a = (RNG.standard_normal((4, dim)) * 5).astype(np.float32)
    y = np.zeros_like(a)
    run(mlir, "f", [a], [y], Weights(), 2)
    ad = a.astype(np.float64)
    e = np.exp(ad - ad.max(-1, keepdims=True))
    return check("softmax", y, e / e.sum(-1, keepdims=True), 1e-5)


def check_position_embedding():
    """Position rows (step 1) from a position, then a constant row (step 0),
    as a BERT encoder adds them; positions past the table clamp to its last
    row."""
    ok = True
    rng = np.random.default_rng(2718)
    for fmt in ["f32", "f16", "bf16", "q8_0"]:
        rows, dim = 12, embedding_dim(fmt)
        w = Weights()
        raw_p, deq_p = encode(rng.standard_normal((rows, dim)), fmt)
        raw_t, deq_t = encode(rng.standard_normal((2, dim)), fmt)
        src_p, src_t = w.add(raw_p), w.add(raw_t)
        tp, tt = weight_type((rows, dim), fmt), weight_type((2, dim), fmt)
        mlir = (
            "func.func @f(%%x: tensor<?x%(d)dxf32>, %%p: index) -> tensor<?x%(d)dxf32> attributes {kiln.max_tokens = 8} {\n"
            "  %%c0 = arith.constant 0 : index\n"
            "  %%wp = kiln.weight %(sp)s -> %(tp)s\n"
            "  %%wt = kiln.weight %(st)s -> %(tt)s\n"
            "  %%a = kiln.position_embedding %%x, %%wp[%%p] : tensor<?x%(d)dxf32>, %(tp)s -> tensor<?x%(d)dxf32>\n"
            "  %%b = kiln.position_embedding %%a, %%wt[%%c0] {step = 0 : i64} : tensor<?x%(d)dxf32>, %(tt)s -> tensor<?x%(d)dxf32>\n"
            "  return %%b : tensor<?x%(d)dxf32>\n}\n") % dict(d=dim, sp=src_p, tp=tp, st=src_t, tt=tt)
        for tokens, pos in [(5, 0), (7, 9)]:
            x = rng.standard_normal((tokens, dim)).astype(np.float32)
            y = np.zeros_like(x)
            run(mlir, "f", [x, pos], [y], w, 2)
            rows_used = np.minimum(pos + np.arange(tokens), rows - 1)
            want = x.astype(np.float64) + deq_p[rows_used] + deq_t[0]
            ok &= check("position_embedding %s T=%d position=%d" % (fmt, tokens, pos), y, want, 1e-6)
    return ok


def check_mean_pool():
    """Mean of the rows, then L2-normalized, against float64; an all-zero
    input stays zero (torch's eps)."""
    ok = True
    rng = np.random.default_rng(1618)
    for dim, normalize, tokens, threads in [(384, True, 7, 3), (64, False, 1, 1), (64, True, 8, 2)]:
        mlir = (
            "func.func @f(%%x: tensor<?x%(d)dxf32>) -> tensor<1x%(d)dxf32> attributes {kiln.max_tokens = 8} {\n"
            "  %%y = kiln.mean_pool %%x {normalize = %(n)s} : tensor<?x%(d)dxf32> -> tensor<1x%(d)dxf32>\n"
            "  return %%y : tensor<1x%(d)dxf32>\n}\n") % dict(d=dim, n="true" if normalize else "false")
        x = (rng.standard_normal((tokens, dim)) * 3 + 0.5).astype(np.float32)
        y = np.zeros((1, dim), dtype=np.float32)
        run(mlir, "f", [x], [y], Weights(), threads)
        want = x.astype(np.float64).mean(0, keepdims=True)
        if normalize:
            want /= max(np.linalg.norm(want), 1e-12)
        ok &= check("mean_pool %d normalize=%d T=%d threads=%d" % (dim, normalize, tokens, threads), y, want, 1e-6)
    x = np.zeros((3, 64), dtype=np.float32)
    y = np.ones((1, 64), dtype=np.float32)
    run(mlir.replace("384", "64"), "f", [x], [y], Weights(), 2)
    zero = not y.any()
    print("mean_pool of zeros stays zero %s" % ("ok" if zero else "FAIL"))
    return ok and zero


CHECKS = {
    "linear": check_linear, "linear_int8": check_linear_int8,
    "linear_sparse_int8": check_linear_sparse_int8,
    "linear_unstructured_int8": check_linear_unstructured_int8,
    "linear_activation_bits": check_linear_activation_bits,
    "linear_narrow": check_linear_narrow,
    "linear_int8_extremes": check_linear_int8_extremes,
    "norm_linear_int8": check_norm_linear_int8, "mlp_int8": check_mlp_int8,
    "linear_rope_int8": check_linear_rope_int8,
    "tied_embedding_int8": check_tied_embedding_int8,
    "embedding": check_embedding, "norm": check_norm,
    "rope": check_rope, "attention": check_attention,
    "attention_batch": check_attention_batch, "rope_batch": check_rope_batch,
    "elementwise": check_elementwise, "softmax": check_softmax,
    "kernel_identity": check_kernel_identity,
    "position_embedding": check_position_embedding, "mean_pool": check_mean_pool,
}

if __name__ == "__main__":
    # OP=FMT,FMT...: linear_int8 over these formats only.
    results = [CHECKS[name](*([formats.split(",")] if formats else []))
               for name, _, formats in (arg.partition("=") for arg in sys.argv[1:])]
    sys.exit(0 if results and all(results) else 1)
