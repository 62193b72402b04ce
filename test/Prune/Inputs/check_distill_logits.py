"""kiln-distill end to end (inputs=FILE.npy) on a random 24->32->32->10 MLP
(kiln.linear with biases, kiln.relu), pruned at 50% by kiln-prune, against
float64 numpy:
  - a numpy transcription of the pass (full-batch Adam on T^2 * mean
    KL(softmax(z_t/T) || softmax(z_s/T))) for a few steps gives the pass's
    weights and biases (relative error);
  - the pruned zeros stay zeros;
  - the remark's losses equal numpy's on the weights before and after;
  - the default run wins back most of the soft-logit loss on held-out
    inputs (asserted >= 50%).

usage: check_distill_logits.py WORKDIR   (kiln-opt from $KILN_TOOLS_DIR)
"""

import os
import re
import subprocess
import sys

import numpy as np

WORK = sys.argv[1]
os.makedirs(WORK, exist_ok=True)
TOOLS = os.environ.get("KILN_TOOLS_DIR", "")
RNG = np.random.default_rng(7)
SIZES = [24, 32, 32, 10]
T = 2.0
failures = 0


def report(name, ok, detail=""):
    global failures
    failures += not ok
    print("%s: %s" % (name, " ".join(x for x in (detail, "ok" if ok else "FAIL") if x)))


def module_text(params):
    """The MLP as kiln ops, weights inline (named by their locations)."""
    lines, value = [], "%x"
    for i in range(len(SIZES) - 1):
        w, b = params[2 * i], params[2 * i + 1]
        n, k = w.shape
        lines.append('  %%w%d = kiln.weight dense<"0x%s"> : tensor<%dxf32> -> !kiln.weight<%dx%dxf32> loc("fc%d.weight")'
                     % (i, w.astype("<f4").tobytes().hex(), w.size, n, k, i))
        lines.append('  %%b%d = kiln.weight dense<"0x%s"> : tensor<%dxf32> -> !kiln.weight<%dxf32> loc("fc%d.bias")'
                     % (i, b.astype("<f4").tobytes().hex(), n, n, i))
        lines.append("  %%a%d = kiln.linear %s, %%w%d, bias %%b%d : tensor<?x%dxf32>, !kiln.weight<%dx%dxf32>, "
                     "!kiln.weight<%dxf32> -> tensor<?x%dxf32>" % (i, value, i, i, k, n, k, n, n))
        value = "%%a%d" % i
        if i < len(SIZES) - 2:
            lines.append("  %%r%d = kiln.relu %%a%d : tensor<?x%dxf32>" % (i, i, n))
            value = "%%r%d" % i
    return ("func.func @forward(%%x: tensor<?x%dxf32>) -> tensor<?x%dxf32> attributes {kiln.max_tokens = 8} {\n"
            % (SIZES[0], SIZES[-1]) + "\n".join(lines) +
            "\n  return %s : tensor<?x%dxf32>\n}\n" % (value, SIZES[-1]))


def kiln_opt(text, *passes):
    tool = os.path.join(TOOLS, "kiln-opt") if TOOLS else "kiln-opt"
    proc = subprocess.run([tool, "--mlir-print-debuginfo"] + list(passes), input=text,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return proc.stdout, proc.stderr


def params_of(text):
    """Weights and biases in op order (a rewritten weight reads a
    dense_resource blob, an untouched one its inline dense values)."""
    params = []
    for m in re.finditer(r'kiln\.weight (dense_resource<([\w.]+)>|dense<"0x([0-9A-F]+)">|dense<\[([^\]]*)\]>)'
                         r'[^\n]*!kiln\.weight<([0-9x]+)xf32', text):
        shape = [int(d) for d in m.group(5).split("x")]
        if m.group(4) is not None:
            values = np.array([float(v) for v in m.group(4).split(",")])
        else:
            if m.group(2):
                hexed = re.search(r'\b%s: "0x([0-9A-F]+)"' % re.escape(m.group(2)), text).group(1)
                raw = bytes.fromhex(hexed)[4:]
            else:
                raw = bytes.fromhex(m.group(3))
            values = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        params.append(values.reshape(shape))
    return params


def forward(params, x):
    acts, h = [x], x
    for i in range(len(SIZES) - 1):
        a = h @ params[2 * i].T + params[2 * i + 1]
        h = np.maximum(a, 0) if i < len(SIZES) - 2 else a
        acts.append(a)
    return acts


def soft(z):
    e = np.exp(z / T - (z / T).max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def loss(params, teacher, x):
    pt, ps = soft(forward(teacher, x)[-1]), soft(forward(params, x)[-1])
    return T * T * np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), 1))


def adam(params, teacher, x, steps, lr):
    """The pass in float64: full-batch Adam on the masked gradients."""
    p = [q.copy() for q in params]
    masks = [(q != 0) if q.ndim == 2 else np.ones_like(q, dtype=bool) for q in p]
    m = [np.zeros_like(q) for q in p]
    v = [np.zeros_like(q) for q in p]
    pt = soft(forward(teacher, x)[-1])
    for s in range(1, steps + 1):
        acts = forward(p, x)
        dz = T * (soft(acts[-1]) - pt) / len(x)
        grads = [None] * len(p)
        for i in reversed(range(len(SIZES) - 1)):
            h = x if i == 0 else np.maximum(acts[i], 0)
            grads[2 * i], grads[2 * i + 1] = dz.T @ h, dz.sum(0)
            if i:
                dz = (dz @ p[2 * i]) * (acts[i] > 0)
        for i in range(len(p)):
            g = grads[i] * masks[i]
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            p[i] -= lr * (m[i] / (1 - 0.9 ** s)) / (np.sqrt(v[i] / (1 - 0.999 ** s)) + 1e-8)
    return p


teacher = []
for n, k in zip(SIZES[1:], SIZES[:-1]):
    teacher += [RNG.standard_normal((n, k)) * np.sqrt(2 / k), 0.1 * RNG.standard_normal(n)]
teacher = [q.astype(np.float32).astype(np.float64) for q in teacher]
x_train = RNG.standard_normal((2048, SIZES[0])).astype(np.float32)
x_test = RNG.standard_normal((512, SIZES[0])).astype(np.float32)
inputs = os.path.join(WORK, "inputs.npy")
np.save(inputs, x_train)
teacher_path = os.path.join(WORK, "teacher.mlir")
with open(teacher_path, "w") as f:
    f.write(module_text(teacher))

pruned_text, _ = kiln_opt(module_text(teacher), "--kiln-prune=rate=0.5")
pruned = params_of(pruned_text)
x64 = x_train.astype(np.float64)

# A few steps against the float64 transcription.
steps, lr = 5, 3e-3
text, remark = kiln_opt(pruned_text, "--kiln-distill=teacher=%s inputs=%s steps=%d" % (teacher_path, inputs, steps))
got, want = params_of(text), adam(pruned, teacher, x64, steps, lr)
rel = max(np.linalg.norm(g - w) / np.linalg.norm(w) for g, w in zip(got, want))
moved = min(np.linalg.norm(w - p) / np.linalg.norm(p) for w, p in zip(want, pruned))
report("adam steps vs float64 numpy", rel < 1e-4 and moved > 1e-3,
       "rel_err=%.2e (weights moved by >= %.2e)" % (rel, moved))
report("pruned zeros kept", all(np.array_equal(g[p == 0], np.zeros(np.sum(p == 0)))
                                for g, p in zip(got[0::2], pruned[0::2])))
m = re.search(r"soft-logit loss \(T = 2, 2048 inputs\) ([0-9.e+-]+) -> ([0-9.e+-]+) after 5 steps", remark)
before, after = (float(m.group(1)), float(m.group(2))) if m else (np.nan, np.nan)
want_before, want_after = loss(pruned, teacher, x64), loss(got, teacher, x64)
report("remarked losses vs numpy",
       abs(before - want_before) < 1e-4 * want_before and abs(after - want_after) < 1e-3 * want_after,
       "%.6g -> %.6g (numpy %.6g -> %.6g)" % (before, after, want_before, want_after))

# The default run, judged on held-out inputs.
text, _ = kiln_opt(pruned_text, "--kiln-distill=teacher=%s inputs=%s" % (teacher_path, inputs))
t64 = x_test.astype(np.float64)
l_pruned, l_distilled = loss(pruned, teacher, t64), loss(params_of(text), teacher, t64)
won = 1 - l_distilled / l_pruned
report("held-out soft-logit loss", won >= 0.5,
       "pruned %.4f distilled %.4f (won back %.1f%%)" % (l_pruned, l_distilled, 100 * won))
print("FAILURES: %d" % failures if failures else "all ok")
sys.exit(1 if failures else 0)
