"""Gemma 3's sliding-window layers on a prompt longer than the window: Kiln
with exact (f32) activations against the float64 reference forward pass
(reference_gemma3.py) at the last position of a 640-token prompt, which the
five-in-six sliding layers see only its last 512 positions of. The prompt runs
through Kiln in steps of at most kiln.max_tokens (256) tokens, so the window
also crosses step boundaries in the KV cache. The window matters for this
prompt: without it the reference's logits move by 40% (measured), so a Kiln
that ignored it would fail by four orders of magnitude.

Usage: gemma3_sliding_window.py MODEL.gguf F32.kiln LIBKILN_RUNTIME.so
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_llama_cpp import Kiln, rel  # noqa: E402
from llama_cpp_peer import LlamaPeer  # noqa: E402 (compare_llama_cpp put it on the path)
from reference_gemma3 import ReferenceGemma3  # noqa: E402

TOKENS = 640
# Measured 9e-6 at 700 tokens (f32 rounding over a longer sum than the
# short-prompt test's 1e-5 covers).
REF_TOL = 3e-5
WORDS = ["apple", "river", "stone", "cloud", "amber", "violet", "tiger", "ocean"]


def main(gguf, artifact, lib):
    vocab = LlamaPeer(gguf, vocab_only=True)
    text = " ".join("Item %d of the list is the word %s." % (i, WORDS[i * 5 % 8]) for i in range(200))
    tokens = vocab.tokenize(text.encode(), add_bos=True)[:TOKENS]
    assert len(tokens) == TOKENS, len(tokens)
    reference = ReferenceGemma3(gguf)
    want = reference.logits(np.array(tokens))[-1]
    got = Kiln(lib, artifact).eval(tokens)
    err = rel(got, want)
    ok = err <= REF_TOL
    print("f32 activations vs float64 reference, %d tokens, window %d: rel_err=%.3e tol=%.1e %s" % (
        TOKENS, reference.window, err, REF_TOL, "ok" if ok else "FAIL"))
    return ok


if __name__ == "__main__":
    sys.exit(0 if main(*sys.argv[1:4]) else 1)
