"""kiln-opt's kiln-quantize runs the calibrated methods kiln-compile runs:
method=gptq on a 64x256 layer (statistics written by numpy) gives the same
bytes as kiln-quantize-driver's GPTQ (the library path kiln-compile takes),
its output error on the calibration inputs is below round to nearest's
(decoded against float64 numpy), and budget=B (mixed precision) lands at or under B bits per weight, at
B = 4.5 with less relative output error (sum over layers of
tr(dW H dW^T) / tr(W H W^T)) than every layer at 4 bits.

usage: check_pass_methods.py WORKDIR   (tools from $KILN_TOOLS_DIR)
"""

import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "..", "Inputs"))
import kstats  # noqa: E402

WORK = sys.argv[1]
os.makedirs(WORK, exist_ok=True)
TOOLS = os.environ["KILN_TOOLS_DIR"]
RNG = np.random.default_rng(7)
ROWS, K, TOKENS = 64, 256, 1024
mix = RNG.standard_normal((K, K)) / np.sqrt(K) + np.eye(K)
X = RNG.standard_normal((TOKENS, K)) @ mix
X[:, RNG.choice(K, 8, replace=False)] *= 10
W = RNG.standard_normal((ROWS, K)).astype(np.float32)
STATS = os.path.join(WORK, "layer.kstats")
kstats.write(STATS, TOKENS, [(["w"], np.abs(X).mean(0), X.T @ X / TOKENS)])
W.astype("<f4").tofile(os.path.join(WORK, "w.f32"))

MODULE = """func.func @linear(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 8}} {{
  %w = kiln.weight dense<"0x{hex}"> : tensor<{count}xf32> -> !kiln.weight<{n}x{k}xf32> loc("w")
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{n}x{k}xf32> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
""".format(k=K, n=ROWS, hex=W.astype("<f4").tobytes().hex(), count=W.size)


# For budget=B: a chain of three layers whose inputs differ in scale and
# spread, so that their output errors per bit differ.
CHAIN = [("w", W[:, :], X), ("c2", RNG.standard_normal((96, ROWS)), 3 * RNG.standard_normal((TOKENS, ROWS))),
         ("c3", RNG.standard_normal((32, 96)), 0.3 * RNG.standard_normal((TOKENS, 96)))]
CHAIN = [(n, w.astype(np.float32), x) for n, w, x in CHAIN]
CHAIN_STATS = os.path.join(WORK, "chain.kstats")
kstats.write(CHAIN_STATS, TOKENS, [([n], np.abs(x).mean(0), x.T @ x / TOKENS) for n, _, x in CHAIN])


def chain_module():
    lines, value = [], "%x"
    for i, (name, w, _) in enumerate(CHAIN):
        n, k = w.shape
        lines.append('  %%w%d = kiln.weight dense<"0x%s"> : tensor<%dxf32> -> !kiln.weight<%dx%dxf32> loc("%s")'
                     % (i, w.astype("<f4").tobytes().hex(), w.size, n, k, name))
        lines.append("  %%y%d = kiln.linear %s, %%w%d : tensor<?x%dxf32>, !kiln.weight<%dx%dxf32> -> tensor<?x%dxf32>"
                     % (i, value, i, k, n, k, n))
        value = "%%y%d" % i
    return ("func.func @chain(%%x: tensor<?x%dxf32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
            % (K, CHAIN[-1][1].shape[0]) + "\n".join(lines) +
            "\n  return %s : tensor<?x%dxf32>\n}\n" % (value, CHAIN[-1][1].shape[0]))


def decode_packed_sym(data, rows, k, bits, group):
    """Kiln's packed symmetric rows with f16 scales (RoundToNearest.h): per
    group an f16 scale, then group*bits/8 bytes of codes, LSB first; value =
    scale * (code - 2^(bits-1))."""
    block = 2 + group * bits // 8
    raw = np.frombuffer(data, np.uint8).reshape(rows * k // group, block)
    scales = raw[:, :2].copy().view("<f2").astype(np.float64)[:, 0]
    bit_stream = np.unpackbits(raw[:, 2:], axis=1, bitorder="little").reshape(-1, group, bits)
    codes = (bit_stream.astype(np.int64) << np.arange(bits)).sum(axis=2)
    return ((codes - (1 << (bits - 1))) * scales[:, None]).reshape(rows, k)


def chain_output_error(options):
    """Bits per weight and sum over the layers of tr(dW H dW^T) / tr(W H W^T)
    (each layer's output error on its calibration inputs, relative to its
    output) after kiln-quantize."""
    text = run([os.path.join(TOOLS, "kiln-opt"), "--kiln-quantize=%s stats=%s" % (options, CHAIN_STATS)],
               input=chain_module(), text=True)
    found = re.findall(r"dense_resource<([\w.]+)> : tensor<\d+xi8> -> !kiln\.weight<(\d+)x(\d+)x"
                       r"#kiln\.quant<bits = (\d), group = (\d+), scale = f16>>", text)
    by_name = {n: (w, x) for n, w, x in CHAIN}
    error = bits_total = 0.0
    encodings = []
    for blob, rows, k, bits, group in found:
        name = blob  # the weight's name (kiln.weight's blob is named after it)
        rows, k, bits, group = int(rows), int(k), int(bits), int(group)
        data = bytes.fromhex(re.search(r'\b%s: "0x([0-9A-F]+)"' % re.escape(blob), text).group(1))[4:]
        w, x = by_name[name]
        dw = decode_packed_sym(data, rows, k, bits, group) - w.astype(np.float64)
        # Round to nearest: within a step (the end code opposite the largest
        # value is clamped), |dw| <= max|w| / 2^(bits-1); a misread code or
        # scale is far outside it.
        assert np.abs(dw).max() <= np.abs(w).max() * 2.0 ** (1 - bits) * 1.01, (name, bits, group)
        h = x.T @ x / TOKENS
        w64 = w.astype(np.float64)
        error += np.einsum("rk,kj,rj->", dw, h, dw) / np.einsum("rk,kj,rj->", w64, h, w64)
        bits_total += 8.0 * len(data)
        encodings.append("%s=%d/g%d" % (name, bits, group))
    assert len(found) == len(CHAIN), text[:2000]
    return bits_total / sum(w.size for _, w, _ in CHAIN), error, " ".join(encodings)


def run(args, **kw):
    proc = subprocess.run(args, capture_output=True, **kw)
    if proc.returncode != 0:
        sys.exit("FAIL: %s: %s" % (" ".join(args), proc.stderr))
    return proc.stdout


def quantize_pass(options):
    """The quantized weight's type and blob bytes after kiln-opt."""
    text = run([os.path.join(TOOLS, "kiln-opt"), "--kiln-quantize=" + options],
               input=MODULE, text=True)
    m = re.search(r"kiln\.weight dense_resource<([\w.]+)> : tensor<\d+xi8> -> (!kiln\.weight<[^\n]*>>)", text)
    hexed = re.search(r'\b%s: "0x([0-9A-F]+)"' % re.escape(m.group(1)), text).group(1)
    return m.group(2), bytes.fromhex(hexed)[4:]


def decode_q4_g32(data):
    """Kiln's packed 4-bit, groups of 32, symmetric, f16 scales
    (RoundToNearest.h): per group an f16 scale then 16 bytes of codes, low
    nibble first; value = scale * (code - 8)."""
    block = 2 + 16
    out = np.empty((ROWS, K))
    raw = np.frombuffer(data, np.uint8).reshape(ROWS, K // 32, block)
    scales = raw[:, :, :2].copy().view("<f2").astype(np.float64)[:, :, 0]
    q = raw[:, :, 2:]
    codes = np.stack([q & 15, q >> 4], axis=-1).reshape(ROWS, K // 32, 32)
    out = (codes.astype(np.float64) - 8) * scales[:, :, None]
    return out.reshape(ROWS, K)


def output_error(w):
    want = X @ W.astype(np.float64).T
    return np.linalg.norm(X @ w.T - want) / np.linalg.norm(want)


failures = 0
driver = os.path.join(TOOLS, "kiln-quantize-driver")
rtn_type, rtn = quantize_pass("bits=4")
gptq_type, gptq = quantize_pass("bits=4 method=gptq stats=" + STATS)
run([driver, "bits=4,gptq,stats=" + STATS, str(K), os.path.join(WORK, "w.f32"),
     os.path.join(WORK, "gptq.bin")])
same = gptq == open(os.path.join(WORK, "gptq.bin"), "rb").read()
failures += not same
print("gptq: type %s, bytes equal to the driver's: %s" % (gptq_type, same))
# The decoder must reproduce RTN itself before its errors mean anything.
rtn_w = decode_q4_g32(rtn)
rtn_err = np.abs(rtn_w - W).max() / np.abs(W).max()
failures += not rtn_err < 0.1
e_rtn, e_gptq = output_error(rtn_w), output_error(decode_q4_g32(gptq))
below = e_gptq < e_rtn
failures += not below
print("output error: rtn %.4f gptq %.4f below: %s" % (e_rtn, e_gptq, below))
# Mixed precision at budget B against every layer at 4 bits, group 32 (4.5
# bits per weight): less output error for no more bits.
bpw_uniform, e_uniform, _ = chain_output_error("bits=4")
failures += not abs(bpw_uniform - 4.5) < 1e-9
for budget in (4.5, 3.5):
    bpw, e_mixed, enc = chain_output_error("budget=%g" % budget)
    ok = bpw <= budget + 1e-9 and (budget != 4.5 or e_mixed < e_uniform)
    failures += not ok
    print("budget=%g: %s, %.4f bits per weight, relative output error %.4g (uniform 4 bits, 4.5 bpw: %.4g): %s"
          % (budget, enc, bpw, e_mixed, e_uniform, ok))
print("failures: %d" % failures)
sys.exit(1 if failures else 0)
