"""GPTQ and AWQ beside round to nearest on one random layer whose inputs are
correlated (a few latent factors, uneven channel scales): the layer's output
error ||(W - Q) X^T|| over the calibration inputs X, computed in float64 numpy
from the decoded codes (for AWQ Q = Q(W diag(s)) diag(1/s), its column scales
folded back), must be smaller than round to nearest's, for Kiln's packed
layout and ggml's blocks. The Hessian reaches kiln-quantize-driver as a .kstats file
(lib/Calibration/CalibrationStats.h), as kiln-compile's stats= option reads it.

usage: check_calibrated.py DRIVER WORKDIR
"""

import os
import subprocess
import sys

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import quants

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Inputs"))
import kstats

DRIVER, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
rng = np.random.default_rng(2013)

N, K, ROWS = 2048, 256, 48
x = rng.standard_normal((N, 16)) @ rng.standard_normal((16, K))
x += 0.2 * rng.standard_normal((N, K))
x *= np.exp(rng.normal(0, 0.7, K))  # channels of uneven size
x = x.astype(np.float32).astype(np.float64)
hessian = x.T @ x / N
stats = os.path.join(WORK, "layer.kstats")
kstats.write(stats, N, [(["input"], np.abs(x).mean(0), hessian)])
w = (rng.standard_normal((ROWS, K)) * 0.05).astype(np.float32)


def run_driver(options):
    src, dst = os.path.join(WORK, "w.f32"), os.path.join(WORK, "q.bin")
    w.tofile(src)
    subprocess.run([DRIVER, options, str(K), src, dst], check=True)
    return np.fromfile(dst, dtype=np.uint8)


def scalars(raw, kind):
    if kind == "f32":
        return raw.copy().view("<f4").astype(np.float64).ravel()
    if kind == "f16":
        return raw.copy().view("<f2").astype(np.float64).ravel()
    return (raw.copy().view("<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64).ravel()


def decode_packed(data, bits, group, sym, scale):
    """Kiln's packed blocks (RoundToNearest.h): scale, [zero], then the codes
    as one LSB-first bit stream."""
    sb = 4 if scale == "f32" else 2
    header = sb if sym else 2 * sb
    blocks = data.reshape(-1, header + group * bits // 8)
    d = scalars(blocks[:, :sb], scale)
    bitsarr = np.unpackbits(blocks[:, header:], axis=1, bitorder="little")
    codes = (bitsarr.reshape(len(blocks), group, bits) << np.arange(bits)).sum(-1)
    if sym:
        values = d[:, None] * (codes - (1 << (bits - 1)))
    else:
        values = d[:, None] * codes + scalars(blocks[:, sb:2 * sb], scale)[:, None]
    return values.reshape(ROWS, K)


def decode(options, data):
    fields = dict(f.split("=") if "=" in f else (f, "") for f in options.split(","))
    if fields.get("format") == "gguf":
        kind = {"4": QT.Q4_0, "5": QT.Q5_0, "8": QT.Q8_0}[fields["bits"]]
        if "asym" in fields:
            kind = {"4": QT.Q4_1, "5": QT.Q5_1}[fields["bits"]]
        return quants.dequantize(data.reshape(ROWS, -1), kind).astype(np.float64)
    group = K if fields["group"] == "channel" else int(fields["group"])
    return decode_packed(data, int(fields["bits"]), group, "asym" not in fields,
                         fields.get("scale", "f16"))


for options in ["bits=4,group=32", "bits=3,group=32,asym", "bits=2,group=64,asym",
                "bits=6,group=channel,scale=bf16", "bits=4,group=32,format=gguf",
                "bits=5,group=32,asym,format=gguf", "bits=8,group=32,format=gguf"]:
    errors = {}
    for method in ("rtn", "gptq", "awq"):
        extra = "," + method + ",stats=" + stats if method != "rtn" else ""
        q = decode(options, run_driver(options + extra))
        if method == "awq":
            q = q / np.fromfile(os.path.join(WORK, "q.bin.scales"), np.float32)
        errors[method] = np.linalg.norm((w - q) @ x.T)
    for method in ("gptq", "awq"):
        ratio = errors[method] / errors["rtn"]
        print("%s: %s/rtn output error %.3f, below: %s" % (options, method, ratio, ratio < 1))

# search (RoundToNearest.h): each group's scale (and zero) searched for the
# least squared error: the weights' own error below the extremes' scales'
# without statistics; with them (weighted by the inputs' mean squares) the
# output error below round to nearest's, and GPTQ's at most 1% above GPTQ's
# without search (at 4 bits its feedback leaves little; the test file checks
# which are below).
for options in ["bits=4,group=32", "bits=3,group=32", "bits=2,group=64,asym", "bits=3,group=channel"]:
    rtn = decode(options, run_driver(options))
    searched = decode(options, run_driver(options + ",search"))
    ratio = np.linalg.norm(w - searched) / np.linalg.norm(w - rtn)
    print("%s: search/rtn weight error %.3f, below: %s" % (options, ratio, ratio < 1))
    for method in ("rtn", "gptq"):
        extra = "," + method + ",stats=" + stats
        plain = decode(options, run_driver(options + extra))
        searched = decode(options, run_driver(options + extra + ",search"))
        ratio = np.linalg.norm((w - searched) @ x.T) / np.linalg.norm((w - plain) @ x.T)
        bound = 1 if method == "rtn" else 1.01
        print("%s: %s search/%s output error %.3f, below %g: %s" % (options, method, method, ratio, bound,
                                                                  ratio < bound))
