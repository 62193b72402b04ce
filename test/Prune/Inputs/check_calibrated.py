"""kiln-prune's calibrated criteria on random data with correlated inputs of
uneven scale, against float64 numpy: Wanda's mask equals |W| * ||x_j|| per
row; SparseGPT's mask and updated weights equal a numpy transcription of the
paper's Algorithm 1; and the layer's output error ||X W^T - X W'^T|| / ||X W^T||
is asserted to fall from magnitude to Wanda to SparseGPT.

usage: check_calibrated.py WORKDIR   (kiln-opt from $KILN_TOOLS_DIR)
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
TOOLS = os.environ.get("KILN_TOOLS_DIR", "")
RNG = np.random.default_rng(31)
failures = 0

ROWS, K, TOKENS = 64, 256, 1024
# Inputs: mixed Gaussian features (correlated columns), a few columns 10x
# larger (the outlier features Wanda was designed around).
mix = RNG.standard_normal((K, K)) / np.sqrt(K) + np.eye(K)
X = RNG.standard_normal((TOKENS, K)) @ mix
X[:, RNG.choice(K, 8, replace=False)] *= 10
W = RNG.standard_normal((ROWS, K)).astype(np.float32)
stats = os.path.join(WORK, "layer.kstats")
kstats.write(stats, TOKENS, [(["w"], np.abs(X).mean(0), X.T @ X / TOKENS)])
# What kiln-prune reads: the file's f32 values.
H = kstats.read(stats)[1][0][2].astype(np.float64)

MODULE = """func.func @linear(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 8}} {{
  %w = kiln.weight dense<"0x{hex}"> : tensor<{count}xf32> -> !kiln.weight<{n}x{k}xf32> loc("w")
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{n}x{k}xf32> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
""".format(k=K, n=ROWS, hex=W.astype("<f4").tobytes().hex(), count=W.size)


def kiln_opt(text, *passes):
    tool = os.path.join(TOOLS, "kiln-opt") if TOOLS else "kiln-opt"
    proc = subprocess.run([tool] + list(passes), input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return proc.stdout


def weights_of(text):
    """The values of the blob the weight op reads (a rewritten weight's blob
    gets a fresh name)."""
    name = re.search(r"kiln\.weight dense_resource<([\w.]+)>", text).group(1)
    hexed = re.search(r'\b%s: "0x([0-9A-F]+)"' % re.escape(name), text).group(1)
    return np.frombuffer(bytes.fromhex(hexed)[4:], dtype="<f4").reshape(ROWS, K).astype(np.float64)


def prune(options):
    return weights_of(kiln_opt(MODULE, "--kiln-prune=" + options))


def output_error(pruned):
    want = X @ W.astype(np.float64).T
    return np.linalg.norm(X @ pruned.T - want) / np.linalg.norm(want)


def report(name, ok, detail=""):
    global failures
    failures += not ok
    print("%s: %s" % (name, " ".join(x for x in (detail, "ok" if ok else "FAIL") if x)))


def lowest(scores, count):
    """Mask (True: kept) dropping the `count` lowest scores of a 1-D array
    (ties: lower index first)."""
    keep = np.ones(len(scores), dtype=bool)
    order = np.lexsort((np.arange(len(scores)), scores))
    keep[order[:count]] = False
    return keep


def mask_of(scores, pattern):
    keep = np.ones(scores.shape, dtype=bool)
    for r in range(scores.shape[0]):
        if pattern == "unstructured":
            keep[r] = lowest(scores[r], round(0.5 * K))
        else:
            for g in range(0, K, 4):
                keep[r, g:g + 4] = lowest(scores[r, g:g + 4], 2)
    return keep


def sparsegpt(pattern, block=128):
    """SparseGPT, Algorithm 1 of Frantar and Alistarh (2023), in float64:
    the masks per row within each block of columns (the per-row rate of
    kiln-prune), errors spread through the upper Cholesky factor of H^-1."""
    w = W.astype(np.float64).copy()
    h = H.copy()
    h[np.diag_indices(K)] += 0.01 * np.mean(np.diag(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    keep = np.ones_like(w, dtype=bool)
    for c1 in range(0, K, block):
        c2 = min(K, c1 + block)
        err = np.zeros((ROWS, c2 - c1))
        if pattern == "unstructured":
            count = round(0.5 * c2) - round(0.5 * c1)
            s = w[:, c1:c2] ** 2 / np.diag(u)[c1:c2] ** 2
            for r in range(ROWS):
                keep[r, c1:c2] = lowest(s[r], count)
        for j in range(c1, c2):
            if pattern == "2:4" and (j - c1) % 4 == 0:
                s = w[:, j:j + 4] ** 2 / np.diag(u)[j:j + 4] ** 2
                for r in range(ROWS):
                    keep[r, j:j + 4] = lowest(s[r], 2)
            q = np.where(keep[:, j], w[:, j], 0.0)
            e = (w[:, j] - q) / u[j, j]
            w[:, j:c2] -= np.outer(e, u[j, j:c2])
            w[:, j] = q
            err[:, j - c1] = e
        w[:, c2:] -= err @ u[c1:c2, c2:]
    return np.where(keep, w, 0.0).astype(np.float32).astype(np.float64), keep


for pattern, options in (("unstructured", "rate=0.5"), ("2:4", "pattern=nm n=2 m=4")):
    magnitude = prune(options)
    wanda = prune(options + " criterion=wanda calibration=" + stats)
    gpt = prune(options + " criterion=sparsegpt calibration=" + stats)
    want_wanda = mask_of(np.abs(W.astype(np.float64)) * np.sqrt(np.diag(H)), pattern)
    report("wanda %s mask" % pattern, np.array_equal(wanda != 0, want_wanda) and
           np.array_equal(wanda[want_wanda], W[want_wanda].astype(np.float64)))
    want_gpt, want_keep = sparsegpt(pattern)
    rel = np.linalg.norm(gpt - want_gpt) / np.linalg.norm(want_gpt)
    report("sparsegpt %s mask and weights" % pattern,
           np.array_equal(gpt != 0, want_keep) and rel < 1e-5, "rel_err=%.2e" % rel)
    e_mag, e_wanda, e_gpt = output_error(magnitude), output_error(wanda), output_error(gpt)
    report("output error %s" % pattern, e_gpt < e_wanda < e_mag,
           "magnitude %.4f > wanda %.4f > sparsegpt %.4f" % (e_mag, e_wanda, e_gpt))

# kiln-distill: the masks of magnitude and Wanda kept, each row's kept
# weights refitted to the teacher's output (the float module above), against
# a float64 numpy least-squares solve with the same damping; the error it
# wins back is the share of the pruning loss recovered.
teacher = os.path.join(WORK, "teacher.mlir")
with open(teacher, "w") as f:
    f.write(MODULE)
hd = H.copy()
hd[np.diag_indices(K)] += 0.01 * np.mean(np.diag(H))
for pattern, options in (("unstructured", "rate=0.5"), ("2:4", "pattern=nm n=2 m=4")):
    for criterion in ("magnitude", "wanda"):
        # Locations printed: kiln-distill finds the teacher's weight by name.
        pruned_text = kiln_opt(MODULE, "--kiln-prune=%s criterion=%s calibration=%s" % (options, criterion, stats),
                               "--mlir-print-debuginfo")
        pruned = weights_of(pruned_text)
        distilled = weights_of(kiln_opt(pruned_text, "--kiln-distill=teacher=%s calibration=%s" % (teacher, stats)))
        want = np.zeros_like(pruned)
        for r in range(ROWS):
            s_ = np.flatnonzero(pruned[r])
            want[r, s_] = np.linalg.solve(hd[np.ix_(s_, s_)], hd[s_] @ W[r].astype(np.float64))
        want = want.astype(np.float32).astype(np.float64)
        rel = np.linalg.norm(distilled - want) / np.linalg.norm(want)
        before, after = output_error(pruned), output_error(distilled)
        report("distill %s %s" % (criterion, pattern),
               np.array_equal(distilled != 0, pruned != 0) and rel < 1e-5 and after < before,
               "rel_err=%.2e error %.4f -> %.4f" % (rel, before, after))

# kiln-distill on the student's own inputs: statistics with cross moments
# (version 2, as kiln-run --collect-stats --teacher writes them), X_s the
# inputs an already compressed upstream would feed this layer. Each row's
# kept weights against numpy's (H_s,SS + lambda I)^-1 ((H_s + lambda I) w)_S:
# the teacher's layer matched on the student's inputs, the cross moments C
# not used (issue 14: the fit of the teacher's output, right-hand side
# C w, refit in every layer at once, undid upstream errors that the upstream
# refits removed and broke SmolLM2); its error against the teacher's layer
# on those inputs, ||X_s W'^T - X_s W^T||, asserted below the pruned layer's
# and the teacher-input fit's.
X_s = X @ (np.eye(K) + 0.2 * RNG.standard_normal((K, K)) / np.sqrt(K)) + 0.3 * RNG.standard_normal((TOKENS, K))
student_stats = os.path.join(WORK, "student.kstats")
kstats.write(student_stats, TOKENS, [(["w"], np.abs(X_s).mean(0), X_s.T @ X_s / TOKENS, X_s.T @ X / TOKENS)])
_, _, H_s, _ = kstats.read(student_stats)[1][0]
H_s = H_s.astype(np.float64)
damping = 0.01 * np.mean(np.diag(H_s))
want_out = X_s @ W.astype(np.float64).T
for pattern, options in (("unstructured", "rate=0.5"), ("2:4", "pattern=nm n=2 m=4")):
    pruned_text = kiln_opt(MODULE, "--kiln-prune=" + options, "--mlir-print-debuginfo")
    pruned = weights_of(pruned_text)
    by_teacher = weights_of(kiln_opt(pruned_text, "--kiln-distill=teacher=%s calibration=%s" % (teacher, stats)))
    by_student = weights_of(kiln_opt(pruned_text, "--kiln-distill=teacher=%s calibration=%s"
                                     % (teacher, student_stats)))
    want = np.zeros_like(pruned)
    for r in range(ROWS):
        s_ = np.flatnonzero(pruned[r])
        w = W[r].astype(np.float64)
        want[r, s_] = np.linalg.solve(H_s[np.ix_(s_, s_)] + damping * np.eye(len(s_)), (H_s @ w + damping * w)[s_])
    want = want.astype(np.float32).astype(np.float64)
    rel = np.linalg.norm(by_student - want) / np.linalg.norm(want)
    errors = [np.linalg.norm(X_s @ v.T - want_out) / np.linalg.norm(want_out) for v in (pruned, by_teacher, by_student)]
    report("distill student inputs %s" % pattern,
           np.array_equal(by_student != 0, pruned != 0) and rel < 1e-5 and errors[2] < min(errors[:2]),
           "rel_err=%.2e error against the teacher's layer on the student's inputs: pruned %.4f, "
           "teacher-input fit %.4f, student-input fit %.4f"
           % ((rel,) + tuple(errors)))

sys.exit(1 if failures else 0)
