"""kiln-prune on random weights: each mask checked with numpy, and pruned
weights (alone and quantized after pruning) run by the CPU lowering against
a float64 numpy reference.

usage: check_prune.py WORKDIR   (kiln-opt and kiln-compile from $KILN_TOOLS_DIR)
Prints one line per check; exits non-zero if any fails.
"""

import os
import re
import subprocess
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Execution", "Inputs"))
from check_ops import quantize_q8  # noqa: E402
from kiln_exec import Compiled, check, tool  # noqa: E402

WORK = sys.argv[1]
os.makedirs(WORK, exist_ok=True)
RNG = np.random.default_rng(14)
failures = 0

MODULE = """func.func @linear(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 8}} {{
  %w = kiln.weight dense<"0x{hex}"> : tensor<{count}x{ty}> -> !kiln.weight<{n}x{k}x{ty}> loc("w")
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{n}x{k}x{ty}> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
"""


def module_of(w):
    ty = {np.float32: "f32", np.float16: "f16"}[w.dtype.type]
    return MODULE.format(k=w.shape[1], n=w.shape[0], hex=w.astype("<" + w.dtype.str[1:]).tobytes().hex(),
                         count=w.size, ty=ty)


def kiln_opt(text, *passes):
    proc = subprocess.run([tool("kiln-opt")] + list(passes), input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return proc.stdout


def blob(text):
    """The bytes of the blob the weight op reads, past its alignment word (a
    rewritten weight's blob gets a fresh name)."""
    name = re.search(r"kiln\.weight dense_resource<([\w.]+)>", text).group(1)
    m = re.search(r'\b%s: "0x([0-9A-F]+)"' % re.escape(name), text)
    return bytes.fromhex(m.group(1))[4:]


def report(name, ok, detail=""):
    global failures
    failures += not ok
    print("%s: %s" % (name, " ".join(x for x in (detail, "ok" if ok else "FAIL") if x)))


def check_pruned(name, w, pruned, kept_per_row=None, groups=None, blocks=None):
    """Kept values are the originals bit for bit; magnitude keeps the largest."""
    keep = pruned != 0
    same = np.array_equal(pruned[keep], w[keep])
    a = np.abs(w.astype(np.float64))
    if kept_per_row is not None:
        counts_ok = bool((keep.sum(1) == kept_per_row).all())
        lo = np.where(keep, a, np.inf).min(1)
        hi = np.where(keep, -np.inf, a).max(1)
        report(name, same and counts_ok and bool((lo >= hi).all()),
               "rows keep %d of %d" % (kept_per_row, w.shape[1]))
    if groups is not None:
        n, m = groups
        g_keep = keep.reshape(-1, m)
        ga = a.reshape(-1, m)
        lo = np.where(g_keep, ga, np.inf).min(1)
        hi = np.where(g_keep, -np.inf, ga).max(1)
        report(name, same and bool((g_keep.sum(1) <= n).all()) and bool((g_keep.sum(1) == n).all())
               and bool((lo >= hi).all()), "every %d keeps %d" % (m, n))
    if blocks is not None:
        (br, bc), rate = blocks
        rows, k = w.shape
        tiles = lambda x: x.reshape(rows // br, br, k // bc, bc).transpose(0, 2, 1, 3).reshape(-1, br * bc)
        t_keep, t_abs = tiles(keep), tiles(a)
        whole = bool(((t_keep.sum(1) == 0) | (t_keep.sum(1) == br * bc)).all())
        dropped = int((t_keep.sum(1) == 0).sum())
        sums = t_abs.sum(1)
        kept_tiles = t_keep.sum(1) > 0
        order_ok = sums[kept_tiles].min() >= sums[~kept_tiles].max()
        report(name, same and whole and dropped == round(rate * len(sums)) and bool(order_ok),
               "%d of %d blocks zero" % (dropped, len(sums)))


# Masks, per pattern, on f32 and f16 weights.
for dtype in (np.float32, np.float16):
    ty = "f32" if dtype == np.float32 else "f16"
    rows, k = 48, 256
    w = RNG.standard_normal((rows, k)).astype(dtype)
    text = module_of(w)
    for rate in (0.5, 0.3, 0.75):
        out = kiln_opt(text, "--kiln-prune=rate=%g" % rate)
        pruned = np.frombuffer(blob(out), dtype=dtype).reshape(rows, k)
        kept = k - round(rate * k)
        check_pruned("unstructured rate=%g %s %dx%d" % (rate, ty, rows, k), w, pruned, kept_per_row=kept)
        report("unstructured rate=%g %s type" % (rate, ty),
               "nnz = %d, dense = true" % (kept * rows) in out)
    for n, m in ((2, 4), (4, 8), (1, 4)):
        out = kiln_opt(text, "--kiln-prune=pattern=nm n=%d m=%d" % (n, m))
        pruned = np.frombuffer(blob(out), dtype=dtype).reshape(rows, k)
        check_pruned("%d:%d %s %dx%d" % (n, m, ty, rows, k), w, pruned, groups=(n, m))
    out = kiln_opt(text, "--kiln-prune=pattern=block block=4x16 rate=0.5")
    pruned = np.frombuffer(blob(out), dtype=dtype).reshape(rows, k)
    check_pruned("block 4x16 rate=0.5 %s %dx%d" % (ty, rows, k), w, pruned, blocks=((4, 16), 0.5))

# Pruned weights run on the dense kernels: f32 and f16 alone, and quantized
# after pruning (Q4_0 and Q8_0 in ggml's blocks, byte-equal to gguf-py's
# quantizer of the pruned matrix, zeros decoded as zeros), with int8 and f32
# activations, against x @ W'^T in float64.
rows, k = 64, 256
x = RNG.standard_normal((5, k)).astype(np.float32)
for dtype, ty in ((np.float32, "f32"), (np.float16, "f16")):
    w = RNG.standard_normal((rows, k)).astype(dtype)
    pruned_text = kiln_opt(module_of(w), "--kiln-prune=pattern=nm n=2 m=4")
    pruned = np.frombuffer(blob(pruned_text), dtype=dtype).reshape(rows, k).astype(np.float64)
    os.makedirs(os.path.join(WORK, "run-" + ty), exist_ok=True)
    fn = Compiled(pruned_text, os.path.join(WORK, "run-" + ty))
    y = np.zeros((5, rows), dtype=np.float32)
    fn.call("linear", [x], [y], threads=2)
    if not check("run 2:4 %s %dx%d T=5 threads=2" % (ty, rows, k), y, x.astype(np.float64) @ pruned.T, 1e-5):
        failures += 1
w = RNG.standard_normal((rows, k)).astype(np.float32)
for qname, qtype, options in (("q4_0", T.Q4_0, "bits=4 format=gguf"), ("q8_0", T.Q8_0, "bits=8 format=gguf")):
    text = kiln_opt(module_of(w), "--kiln-prune=rate=0.5", "--kiln-quantize=" + options)
    pruned = np.frombuffer(blob(kiln_opt(module_of(w), "--kiln-prune=rate=0.5")), dtype=np.float32).reshape(rows, k)
    want_bytes = quants.quantize(pruned, qtype).tobytes()
    deq = quants.dequantize(np.frombuffer(want_bytes, dtype=np.uint8).reshape(rows, -1), qtype).astype(np.float64)
    report("prune then %s (bytes equal gguf-py, zeros stay zero)" % qname,
           blob(text) == want_bytes and bool((deq[pruned == 0] == 0).all()) and
           "sparsity = #kiln.sparsity<kind = bitmap, nnz = %d, dense = true>" % (rows * k // 2) in text)
    # int8 activations: against the numpy model of their quantization.
    q, dh, _ = quantize_q8(x)
    inputs = {"f32": x.astype(np.float64), "int8": (q * dh).reshape(x.shape)}
    for activations, xin in inputs.items():
        workdir = os.path.join(WORK, "run-%s-%s" % (qname, activations))
        os.makedirs(workdir, exist_ok=True)
        fn = Compiled(text, workdir, activations=activations)
        y = np.zeros((5, rows), dtype=np.float32)
        fn.call("linear", [x], [y], threads=2)
        if not check("run pruned %s activations=%s T=5 threads=2" % (qname, activations), y,
                     xin @ deq.T, 1e-5):
            failures += 1

sys.exit(1 if failures else 0)
