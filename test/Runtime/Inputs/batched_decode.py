"""SmolLM2 through the runtime's C API (ctypes): three prompts of different
lengths decoded together, one kiln_eval_batch step per token (the third
joins two steps late, so the sequences sit at different positions), give
the same greedy tokens and logits as each prompt decoded alone in a session
of its own.

Usage: batched_decode.py LIBKILN_RUNTIME ARTIFACT
"""

import ctypes
import sys

import numpy as np

P = ctypes.POINTER
PROMPTS = ["The capital of France is",
           "Here is a short poem about the sea, the wind and the long grey evenings:",
           "1, 2, 3,"]
STEPS = 24
JOIN_LATE = 2  # the last prompt starts this many steps after the others
# The batched step runs the linear layers as a GEMM over the sequences' rows
# where a single sequence runs a GEMV: sums in another order, nothing else.
TOLERANCE = 1e-4

lib = ctypes.CDLL(sys.argv[1])
err = ctypes.c_char_p()


def check(status):
    if status:
        sys.exit("FAIL: " + err.value.decode())


lib.kiln_model_load.argtypes = [ctypes.c_char_p, ctypes.c_int32, P(ctypes.c_void_p), P(ctypes.c_char_p)]
lib.kiln_session_create.argtypes = [ctypes.c_void_p, ctypes.c_int32, P(ctypes.c_void_p), P(ctypes.c_char_p)]
lib.kiln_session_free.argtypes = [ctypes.c_void_p]
lib.kiln_model_free.argtypes = [ctypes.c_void_p]
lib.kiln_model_n_vocab.argtypes = [ctypes.c_void_p]
lib.kiln_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                              P(ctypes.c_int32), ctypes.c_size_t, P(ctypes.c_size_t), P(ctypes.c_char_p)]
lib.kiln_eval.argtypes = [ctypes.c_void_p, P(ctypes.c_int32), ctypes.c_size_t, ctypes.c_int32,
                          P(ctypes.c_char_p)]
lib.kiln_logits.argtypes = [ctypes.c_void_p, P(ctypes.c_int32)]
lib.kiln_logits.restype = P(ctypes.c_float)
lib.kiln_session_batch_create.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                          P(ctypes.c_void_p), P(ctypes.c_char_p)]
lib.kiln_session_batch_free.argtypes = [ctypes.c_void_p]
lib.kiln_session_batch_session.argtypes = [ctypes.c_void_p, ctypes.c_int32]
lib.kiln_session_batch_session.restype = ctypes.c_void_p
lib.kiln_eval_batch.argtypes = [ctypes.c_void_p, P(ctypes.c_int32), P(ctypes.c_int32), ctypes.c_size_t,
                                P(P(ctypes.c_float)), P(ctypes.c_char_p)]

model = ctypes.c_void_p()
check(lib.kiln_model_load(sys.argv[2].encode(), 2, ctypes.byref(model), ctypes.byref(err)))
n_vocab = lib.kiln_model_n_vocab(model)


def tokenize(text):
    buf = (ctypes.c_int32 * 512)()
    n = ctypes.c_size_t()
    check(lib.kiln_tokenize(model, text.encode(), 0, 0, buf, 512, ctypes.byref(n), ctypes.byref(err)))
    return list(buf[:n.value])


def ids(values):
    return (ctypes.c_int32 * len(values))(*values)


def eval_alone(session, tokens):
    check(lib.kiln_eval(session, ids(tokens), len(tokens), 1, ctypes.byref(err)))
    rows = ctypes.c_int32()
    ptr = lib.kiln_logits(session, ctypes.byref(rows))
    return np.ctypeslib.as_array(ptr, shape=(rows.value, n_vocab))[-1].copy()


prompts = [tokenize(p) for p in PROMPTS]

# Each prompt alone: its greedy tokens and the logits each was chosen from.
alone = []
for tokens in prompts:
    session = ctypes.c_void_p()
    check(lib.kiln_session_create(model, 256, ctypes.byref(session), ctypes.byref(err)))
    logits = [eval_alone(session, tokens)]
    for _ in range(STEPS - 1):
        logits.append(eval_alone(session, [int(np.argmax(logits[-1]))]))
    alone.append(logits)
    lib.kiln_session_free(session)

# Together: sequence i in slot 3 - i (slot 0 stays idle), prompts evaluated
# alone in their slot, then one step for every sequence past its prompt.
batch = ctypes.c_void_p()
check(lib.kiln_session_batch_create(model, 4, 256, ctypes.byref(batch), ctypes.byref(err)))
slot = [3, 2, 1]
together = [[] for _ in PROMPTS]
start = [0, 0, JOIN_LATE]
for step in range(STEPS + JOIN_LATE):
    which, tokens = [], []
    for i, tokens_i in enumerate(prompts):
        if step == start[i]:
            session = lib.kiln_session_batch_session(batch, slot[i])
            together[i].append(eval_alone(session, tokens_i))
        elif start[i] < step and len(together[i]) < STEPS:
            which.append(slot[i])
            tokens.append(int(np.argmax(together[i][-1])))
    if which:
        out = P(ctypes.c_float)()
        check(lib.kiln_eval_batch(batch, ids(which), ids(tokens), len(which), ctypes.byref(out),
                                  ctypes.byref(err)))
        rows = np.ctypeslib.as_array(out, shape=(len(which), n_vocab))
        for row, s in enumerate(which):
            together[slot.index(s)].append(rows[row].copy())

failures = 0
for i, text in enumerate(PROMPTS):
    got = [int(np.argmax(l)) for l in together[i]]
    want = [int(np.argmax(l)) for l in alone[i]]
    err_max = max(float(np.linalg.norm(a - b) / np.linalg.norm(b)) for a, b in zip(together[i], alone[i]))
    same = got == want
    close = err_max <= TOLERANCE
    failures += (not same) + (not close)
    print("sequence %d (%d prompt tokens): greedy tokens equal alone: %s" % (i, len(prompts[i]), "ok" if same else "FAIL"))
    print("sequence %d logits max rel_err=%.2e tol=%.0e %s" % (i, err_max, TOLERANCE, "ok" if close else "FAIL"))

# A bad step is refused with a message, not run.
out = P(ctypes.c_float)()
status = lib.kiln_eval_batch(batch, ids([1, 1]), ids([5, 5]), 2, ctypes.byref(out), ctypes.byref(err))
print("same session twice refused: %s" % ("ok" if status and b"twice" in err.value else "FAIL"))
failures += not (status and b"twice" in err.value)
status = lib.kiln_eval_batch(batch, ids([7]), ids([5]), 1, ctypes.byref(out), ctypes.byref(err))
print("session outside the batch refused: %s" % ("ok" if status and b"not one of" in err.value else "FAIL"))
failures += not (status and b"not one of" in err.value)
lib.kiln_session_batch_free(batch)
lib.kiln_model_free(model)
print("%d failures" % failures)
sys.exit(1 if failures else 0)
