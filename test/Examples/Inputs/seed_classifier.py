"""The seed's network end to end: a 64->64->10 classifier (ReLU, softmax)
trained with numpy on scikit-learn's bundled 8x8 digits (fixed seed), saved
as .npz, imported into kiln ops (kiln.linear, kiln.relu, a 10-wide head),
compressed with Kiln's passes and run with Kiln's CPU kernels:

  float               f32 weights and activations
  W5A5                kiln-quantize{bits=5}, 5-bit activations
  pruned              kiln-prune{rate=0.5} (magnitude, unstructured)
  W5A5+pruned         both
  ... + distilled     kiln-distill before quantizing: layer-wise (least
                      squares against the float teacher, on statistics of
                      the teacher's inputs as Kiln's float model computes
                      them) or end to end (the teacher's soft logits at
                      T = 2 on the training inputs, .npy)

Prints the test accuracy of each and its soft-logit loss against the float
model (T^2 KL at T = 2 on the test set), and the share of the pruned model's
loss each distillation wins back; asserts that Kiln's float logits equal a
float64 numpy forward pass (relative error), that both distilled W5A5 +
pruned rows are within 1.0 point of float, and that the end-to-end fit wins
back at least half of the pruned loss.

usage: seed_classifier.py TOOLS_DIR WORKDIR
"""

import os
import struct
import subprocess
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TOOLS, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
os.environ["KILN_TOOLS_DIR"] = TOOLS
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "Execution", "Inputs"))
from kiln_exec import Compiled, rel_error  # noqa: E402

os.makedirs(WORK, exist_ok=True)
HIDDEN, CLASSES = 64, 10


def train(x, labels, seed=0, steps=600, lr=0.01):
    """Full-batch Adam on softmax cross-entropy, float64."""
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal((HIDDEN, 64)) * np.sqrt(2 / 64), np.zeros(HIDDEN),
              rng.standard_normal((CLASSES, HIDDEN)) * np.sqrt(2 / HIDDEN), np.zeros(CLASSES)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(CLASSES)[labels]
    for step in range(1, steps + 1):
        w1, b1, w2, b2 = params
        h = np.maximum(x @ w1.T + b1, 0)
        z = h @ w2.T + b2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dz = (p - onehot) / len(x)
        dh = (dz @ w2) * (h > 0)
        grads = [dh.T @ x, dh.sum(0), dz.T @ h, dz.sum(0)]
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] -= lr * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    return params


def forward64(params, x):
    w1, b1, w2, b2 = (np.asarray(p, dtype=np.float64) for p in params)
    return np.maximum(x.astype(np.float64) @ w1.T + b1, 0) @ w2.T + b2


def import_npz(path, weights_file):
    """The dense-layer importer: fc1/fc2 weight and bias arrays of an .npz
    become kiln.weight ranges of `weights_file` (named by their keys, which
    kiln-distill matches against the teacher) and kiln.linear, kiln.relu,
    kiln.linear ops. Returns the module text and the weight bytes."""
    arrays = np.load(path)
    blob, refs = bytearray(), {}
    for key in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        raw = arrays[key].astype(np.float32).tobytes()
        blob += b"\0" * (-len(blob) % 64)
        refs[key] = '#kiln.external<"%s", offset = %d, size = %d>' % (weights_file, len(blob), len(raw))
        blob += raw
    k, h = arrays["fc1.weight"].shape[1], arrays["fc1.weight"].shape[0]
    c = arrays["fc2.weight"].shape[0]
    text = f"""func.func @forward(%x: tensor<?x{k}xf32>) -> (tensor<?x{h}xf32>, tensor<?x{c}xf32>) attributes {{kiln.max_tokens = 512}} {{
  %w1 = kiln.weight {refs["fc1.weight"]} -> !kiln.weight<{h}x{k}xf32> loc("fc1.weight")
  %b1 = kiln.weight {refs["fc1.bias"]} -> !kiln.weight<{h}xf32> loc("fc1.bias")
  %w2 = kiln.weight {refs["fc2.weight"]} -> !kiln.weight<{c}x{h}xf32> loc("fc2.weight")
  %b2 = kiln.weight {refs["fc2.bias"]} -> !kiln.weight<{c}xf32> loc("fc2.bias")
  %a = kiln.linear %x, %w1, bias %b1 : tensor<?x{k}xf32>, !kiln.weight<{h}x{k}xf32>, !kiln.weight<{h}xf32> -> tensor<?x{h}xf32>
  %r = kiln.relu %a : tensor<?x{h}xf32>
  %y = kiln.linear %r, %w2, bias %b2 : tensor<?x{h}xf32>, !kiln.weight<{c}x{h}xf32>, !kiln.weight<{c}xf32> -> tensor<?x{c}xf32>
  return %r, %y : tensor<?x{h}xf32>, tensor<?x{c}xf32>
}}
"""
    return text, bytes(blob)


def write_kstats(path, inputs):
    """.kstats (lib/Calibration/CalibrationStats.h) of each layer's inputs."""
    with open(path, "wb") as f:
        f.write(b"KILNSTAT" + struct.pack("<IIQ", 1, len(inputs), len(inputs[0][1])))
        for name, rows in inputs:
            rows = rows.astype(np.float64)
            f.write(struct.pack("<I", 1) + struct.pack("<I", len(name)) + name.encode())
            f.write(struct.pack("<I", rows.shape[1]))
            f.write(np.abs(rows).mean(0).astype("<f4").tobytes())
            f.write((rows.T @ rows / len(rows)).astype("<f4").tobytes())


def kiln_opt(src, dst, passes):
    subprocess.run([os.path.join(TOOLS, "kiln-opt"), src, "-o", dst] + passes, check=True,
                   cwd=WORK)


def run_kiln(text, activations, x):
    """Compiles `text` with Kiln's CPU pipeline and runs forward on x in
    batches of 512: (hidden, logits)."""
    d = os.path.join(WORK, "build-" + str(abs(hash(text)) % 10 ** 8))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed.bin"), "wb") as f:
        f.write(WEIGHTS)
    fn = Compiled(text, d, activations=activations, cpu="x86-64-v4")
    hidden = np.zeros((len(x), HIDDEN), dtype=np.float32)
    logits = np.zeros((len(x), CLASSES), dtype=np.float32)
    for i in range(0, len(x), 512):
        xb = np.ascontiguousarray(x[i:i + 512], dtype=np.float32)
        hb, yb = np.zeros((len(xb), HIDDEN), np.float32), np.zeros((len(xb), CLASSES), np.float32)
        fn.call("forward", [xb], [hb, yb], threads=2)
        hidden[i:i + 512], logits[i:i + 512] = hb, yb
    return hidden, logits


digits = load_digits()
x_all = (digits.data / 16.0).astype(np.float32)
x_train, x_test, y_train, y_test = train_test_split(x_all, digits.target, test_size=0.25,
                                                    random_state=0, stratify=digits.target)
params = train(x_train.astype(np.float64), y_train)
npz = os.path.join(WORK, "seed.npz")
np.savez(npz, **{"fc1.weight": params[0], "fc1.bias": params[1],
                 "fc2.weight": params[2], "fc2.bias": params[3]})

TEXT, WEIGHTS = import_npz(npz, "seed.bin")
with open(os.path.join(WORK, "seed.bin"), "wb") as f:
    f.write(WEIGHTS)
float_mlir = os.path.join(WORK, "float.mlir")
with open(float_mlir, "w") as f:
    f.write(TEXT)

# Calibration through Kiln: the float model's hidden layer on the training set.
hidden_train, _ = run_kiln(TEXT, "f32", x_train)
kstats = os.path.join(WORK, "seed.kstats")
write_kstats(kstats, [("fc1.weight", x_train), ("fc2.weight", hidden_train)])

# End to end: the training inputs as the forward function's calibration set.
inputs_npy = os.path.join(WORK, "train.npy")
np.save(inputs_npy, x_train)

prune = "--kiln-prune=rate=0.5"
quantize = "--kiln-quantize=bits=5 group=32"
layerwise = "--kiln-distill=teacher=%s calibration=%s" % (float_mlir, kstats)
end_to_end = "--kiln-distill=teacher=%s inputs=%s" % (float_mlir, inputs_npy)
rows = [("float", [], "f32"), ("W5A5", [quantize], "int5"), ("50% pruned", [prune], "f32"),
        ("50% pruned + distilled (layer-wise)", [prune, layerwise], "f32"),
        ("50% pruned + distilled (end to end)", [prune, end_to_end], "f32"),
        ("W5A5 + 50% pruned", [prune, quantize], "int5"),
        ("W5A5 + 50% pruned + distilled (layer-wise)", [prune, layerwise, quantize], "int5"),
        ("W5A5 + 50% pruned + distilled (end to end)", [prune, end_to_end, quantize], "int5")]


def soft_logit_loss(logits, reference, t=2.0):
    """T^2 * mean KL(softmax(reference/T) || softmax(logits/T)), float64."""
    def log_soft(z):
        z = z.astype(np.float64) / t
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))
    ref = log_soft(reference)
    return t * t * float(np.mean(np.sum(np.exp(ref) * (ref - log_soft(logits)), 1)))


accuracy, loss = {}, {}
for name, passes, activations in rows:
    text = TEXT
    if passes:
        out = os.path.join(WORK, "variant.mlir")
        kiln_opt(float_mlir, out, passes)
        text = open(out).read()
    _, logits = run_kiln(text, activations, x_test)
    if name == "float":
        err = rel_error(logits, forward64(params, x_test))
        print("float logits vs float64 numpy: rel. error %.2e" % err)
        assert err < 1e-5, err
        float_logits = logits
    accuracy[name] = 100.0 * float((logits.argmax(1) == y_test).mean())
    loss[name] = soft_logit_loss(logits, float_logits)

print("%-44s %s  %s" % ("model (64->64->10, digits)", "test accuracy", "loss vs float"))
for name, _, _ in rows:
    print("%-44s %6.2f%%        %.5f" % (name, accuracy[name], loss[name]))
won = {}
for precision in ("", "W5A5 + "):
    pruned = precision + "50% pruned"
    for kind in ("layer-wise", "end to end"):
        distilled = "%s + distilled (%s)" % (pruned, kind)
        won[distilled] = 1 - loss[distilled] / loss[pruned]
        print("won back by %s: %.1f%% of the pruned loss, %+.2f accuracy points"
              % (distilled, 100 * won[distilled], accuracy[distilled] - accuracy[pruned]))
for kind in ("layer-wise", "end to end"):
    gap = accuracy["float"] - accuracy["W5A5 + 50% pruned + distilled (" + kind + ")"]
    print("distilled (%s) W5A5 + 50%% pruned vs float: %.2f points" % (kind, gap))
    assert gap <= 1.0, gap
assert won["50% pruned + distilled (end to end)"] >= 0.5, won
print("seed example ok")
