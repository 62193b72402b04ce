"""Compares the logits of a distributed run with one rank's.

usage: compare_logits.py ONE.npy DISTRIBUTED.npy NAME
Passes when the largest difference is within 1e-4 of the largest logit
(f32 activations: splitting K over ranks only reorders f32 sums) and the
greedy token of every row is the same.
"""
import sys

import numpy as np

one, dist, name = np.load(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
if one.shape != dist.shape:
    sys.exit(f"FAIL {name}: shapes {one.shape} and {dist.shape} differ")
error = float(np.max(np.abs(one.astype(np.float64) - dist))) / float(np.max(np.abs(one)))
same = bool(np.all(np.argmax(one, axis=1) == np.argmax(dist, axis=1)))
print(f"{name}: {one.shape[0]} rows, max |diff| / max |logit| = {error:.2e}, "
      f"greedy tokens {'identical' if same else 'DIFFER'}")
if error > 1e-4 or not same:
    sys.exit(f"FAIL {name}")
print(f"{name}: ok")
