"""Checks kiln-run --collect-stats against a float64 numpy forward pass: the
statistics of every linear layer's input on the same tokens.

usage: check_stats.py KILN_RUN CAL.kiln MODEL.gguf TEXT STATS.kstats
(TEXT evaluated as one chunk: --ctx at least its token count)
"""

import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Inputs"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Model", "Inputs"))
import kstats
from reference_llama import ReferenceLlama

kiln_run, artifact, model, text_path, stats_path = sys.argv[1:6]
text = open(text_path).read()
ids = subprocess.check_output([kiln_run, "-m", artifact, "-p", text, "--tokenize"], text=True)
tokens = [int(t) for t in ids.split()]

inputs = {}
ReferenceLlama(model).logits(tokens, inputs)
n_tokens, records = kstats.read(stats_path)
assert n_tokens == len(tokens), (n_tokens, len(tokens))

covered, worst_h, worst_a = [], 0.0, 0.0
for weights, mean_abs, hessian in records:
    x = inputs[weights[0]]
    for w in weights[1:]:
        assert inputs[w] is x, "%s and %s do not share an input" % (weights[0], w)
    covered += weights
    h_ref = x.T @ x / len(tokens)
    a_ref = np.abs(x).mean(0)
    worst_h = max(worst_h, np.linalg.norm(hessian - h_ref) / np.linalg.norm(h_ref))
    worst_a = max(worst_a, np.linalg.norm(mean_abs - a_ref) / np.linalg.norm(a_ref))
missing = sorted(set(inputs) - set(covered))
print("tokens: %d, inputs: %d, weights: %d, missing: %s" % (n_tokens, len(records), len(covered), missing))
print("relative error: hessian %.2e, mean |x| %.2e" % (worst_h, worst_a))
print("within 1e-5:", worst_h < 1e-5 and worst_a < 1e-5)
