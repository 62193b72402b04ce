"""Distillation on the student's own inputs, end to end on a tiny model.

The teacher is make_gguf.py's "wide" model (2 layers, 64 wide, F32). It is
pruned 2:4 by magnitude and distilled on the teacher's inputs (kiln-compile
--distill with the teacher's statistics); that student, compiled with
calibration taps, runs beside the teacher's tapped artifact (kiln-run
--collect-stats --teacher), and kiln-compile --distill with those
statistics refits every layer to match the teacher's layer on the inputs
the student itself produces.
Checked against a float64 numpy forward pass of the written GGUFs
(test/Model/Inputs/reference_llama.py):
  - the student's statistics: H = E[x x^T] of its inputs and the cross
    moments E[x y^T] against the teacher's inputs y, on the same chunks;
  - the layers' error against the teacher's layers on the student's inputs,
    ||X W^T - X W_t^T||, summed over the layers: the student-input fit's
    below the teacher-input fit's (what it minimizes);
  - the logits error against the teacher on another text: the share of the
    pruned model's error each fit wins back, asserted >= 30%.

usage: check_student_distill.py KILN_TOOLS_DIR WORKDIR
"""

import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Inputs"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Model", "Inputs"))
import kstats  # noqa: E402
from reference_llama import ReferenceLlama  # noqa: E402

TOOLS, WORK = sys.argv[1:3]
CTX = 32  # the wide model's n_ctx
PRUNE = "--prune=pattern=nm,n=2,m=4"
failures = 0


def report(name, ok, detail):
    global failures
    failures += not ok
    print("%s: %s %s" % (name, detail, "ok" if ok else "FAIL"))


def tool(name, *args):
    return subprocess.run([os.path.join(TOOLS, name), *args], check=True, capture_output=True,
                          text=True).stdout


def path(name):
    return os.path.join(WORK, name)


def words(seed, count):
    """Text in the model's vocabulary (a-k and spaces)."""
    rng = np.random.default_rng(seed)
    return " ".join("".join(rng.choice(list("abcdefghijk"), rng.integers(1, 5))) for _ in range(count))


subprocess.run([sys.executable, os.path.join(HERE, "..", "..", "Import", "Inputs", "make_gguf.py"), "wide",
                path("teacher.gguf")], check=True)
with open(path("calib.txt"), "w") as f:
    f.write(words(1, 600))
held_out = words(2, 100)
calib = ["--collect-stats", path("calib.txt"), "--ctx", str(CTX)]

tool("kiln-compile", "-q", path("teacher.gguf"), "--activations=f32", "--calibration-taps", "-o",
     path("teacher-taps.kiln"))
tool("kiln-run", "-m", path("teacher-taps.kiln"), *calib, "-o", path("teacher.kstats"))
teacher_fit = "--distill=" + path("teacher.kstats")
tool("kiln-compile", "-q", path("teacher.gguf"), PRUNE, teacher_fit, "--activations=f32", "--calibration-taps",
     "-o", path("student-taps.kiln"))
tool("kiln-run", "-m", path("student-taps.kiln"), "--teacher", path("teacher-taps.kiln"), *calib, "-o",
     path("student.kstats"))
for name, flags in (("pruned", []), ("teacher-fit", [teacher_fit]),
                    ("student-fit", ["--distill=" + path("student.kstats")])):
    tool("kiln-compile", "-q", path("teacher.gguf"), PRUNE, *flags, "--emit=gguf", "-o", path(name + ".gguf"))
models = {name: ReferenceLlama(path(name + ".gguf")) for name in ("teacher", "pruned", "teacher-fit", "student-fit")}


def tokenize(text):
    return [int(t) for t in tool("kiln-run", "-m", path("teacher-taps.kiln"), "-p", text, "--tokenize").split()]


# The student's statistics against numpy on the same chunks of CTX tokens
# (the model adds no BOS).
tokens = tokenize(open(path("calib.txt")).read())
sums = {}
for start in range(0, len(tokens), CTX):
    x, y = {}, {}
    models["teacher-fit"].logits(tokens[start:start + CTX], x)
    models["teacher"].logits(tokens[start:start + CTX], y)
    for name in x:
        sums[name] = [a + b for a, b in zip(sums.get(name, (0.0, 0.0, 0.0)),
                                            (x[name].T @ x[name], x[name].T @ y[name], y[name].T @ y[name]))]
n_tokens, records = kstats.read(path("student.kstats"))
worst = 0.0
for weights, _, hessian, cross in records:
    h, c, _ = (m / len(tokens) for m in sums[weights[0]])
    worst = max(worst, np.linalg.norm(hessian - h) / np.linalg.norm(h), np.linalg.norm(cross - c) / np.linalg.norm(c))
first = records[0]
report("student statistics", n_tokens == len(tokens) and worst < 1e-5 and np.array_equal(first[2], first[3]),
       "%d inputs, %d tokens, rel. error vs numpy %.2e, the first input's cross moments equal its H" % (
           len(records), n_tokens, worst))

# Each layer's error against the teacher's on the student's inputs, from the
# moments: ||X W^T - X Wt^T||^2 = tr((W - Wt) H (W - Wt)^T).
layer_error = {}
for fit in ("teacher-fit", "student-fit"):
    total = 0.0
    for name, (h, _, _) in sums.items():
        w, wt = models[fit].w[name], models["teacher"].w[name]
        total += np.trace((w - wt) @ h @ (w - wt).T)
    layer_error[fit] = total / len(tokens)
report("layer error on the student's inputs", layer_error["student-fit"] < layer_error["teacher-fit"],
       "teacher-input fit %.5f > student-input fit %.5f" % (layer_error["teacher-fit"], layer_error["student-fit"]))

# What each fit wins back on the held-out text.
tokens = tokenize(held_out)
chunks = [tokens[start:start + CTX] for start in range(0, len(tokens) - CTX + 1, CTX)]
want = np.concatenate([models["teacher"].logits(chunk) for chunk in chunks])
error = {}
for name in ("pruned", "teacher-fit", "student-fit"):
    got = np.concatenate([models[name].logits(chunk) for chunk in chunks])
    error[name] = np.linalg.norm(got - want) / np.linalg.norm(want)
recovered = {name: 1 - error[name] / error["pruned"] for name in ("teacher-fit", "student-fit")}
report("recovered", min(recovered.values()) >= 0.3,
       "logits error vs the teacher over %d tokens: pruned %.4f, teacher-input fit %.4f (%.0f%% recovered), "
       "student-input fit %.4f (%.0f%% recovered)" % (
           len(chunks) * CTX, error["pruned"], error["teacher-fit"], 100 * recovered["teacher-fit"],
           error["student-fit"], 100 * recovered["student-fit"]))
sys.exit(1 if failures else 0)
