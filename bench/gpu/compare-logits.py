#!/usr/bin/env python3
"""Compares two greedy-logits outputs (bench/gpu/greedy-logits.c):
  compare-logits.py REFERENCE.bin OTHER.bin
Prints, per step, whether the chosen tokens agree and the relative error
max|a - b| / max|b| of the logits (b = REFERENCE), then the maximum over the
steps where both runs had the same history (up to the first disagreement)."""
import sys
import numpy as np


def read(path):
    raw = open(path, "rb").read()
    n_vocab, steps = np.frombuffer(raw[:8], dtype=np.int32)
    rec = np.frombuffer(raw[8:], dtype=np.uint8).reshape(steps, 4 + 4 * n_vocab)
    tokens = rec[:, :4].copy().view(np.int32).ravel()
    logits = rec[:, 4:].copy().view(np.float32)
    return tokens, logits.astype(np.float64)


ref_tok, ref = read(sys.argv[1])
tok, other = read(sys.argv[2])
worst, same = 0.0, True
for i in range(len(ref_tok)):
    err = np.max(np.abs(other[i] - ref[i])) / np.max(np.abs(ref[i]))
    if not np.all(np.isfinite(other[i])):
        err = float("inf")
    print(f"step {i:2d}: token {tok[i]:6d} vs {ref_tok[i]:6d} "
          f"{'same' if tok[i] == ref_tok[i] else 'DIFFERENT'}  rel err {err:.2e}")
    if same:
        worst = max(worst, err)
    same = same and tok[i] == ref_tok[i]
agree = int(np.argmin(tok == ref_tok)) if not np.all(tok == ref_tok) else len(tok)
print(f"tokens agree for {agree} of {len(tok)} steps; max relative logit error "
      f"over the shared history: {worst:.2e}")
