"""Logits of a fixed prompt and greedy continuation, from one rank or from
every rank of a distributed run (mpirun ... python3 distributed_logits.py).

usage: distributed_logits.py LIBKILN_RUNTIME ARTIFACT OUT.npy TP PP DP [PROMPTS]
TP = PP = DP = 0: load the artifact alone (no MPI). Runs the first PROMPTS
(default 1) of the fixed prompts, replica r of a data-parallel run prompts
r, r + DP, ...; rank 0 of the replica writes prompt p's logits rows, then
one row per greedy step, to OUT.npy with {prompt} replaced by p.
"""
import ctypes
import sys

import numpy as np

PROMPTS = ["The capital of France is Paris. The capital of Germany is",
           "def add(a, b):\n    return a + b\n\ndef mul(a, b):"]
STEPS = 8

lib_path, artifact, out_path = sys.argv[1:4]
tp, pp, dp = (int(a) for a in sys.argv[4:7])
prompt_count = int(sys.argv[7]) if len(sys.argv) > 7 else 1
lib = ctypes.CDLL(lib_path)
P = ctypes.POINTER
err = ctypes.c_char_p()
lib.kiln_model_load.argtypes = [ctypes.c_char_p, ctypes.c_int32, P(ctypes.c_void_p), P(ctypes.c_char_p)]
lib.kiln_model_distribute.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32,
                                      P(ctypes.c_char_p)]
lib.kiln_model_rank.argtypes = lib.kiln_model_replica.argtypes = [ctypes.c_void_p]
lib.kiln_session_create.argtypes = [ctypes.c_void_p, ctypes.c_int32, P(ctypes.c_void_p), P(ctypes.c_char_p)]
lib.kiln_model_n_vocab.argtypes = lib.kiln_model_max_tokens.argtypes = [ctypes.c_void_p]
lib.kiln_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                              P(ctypes.c_int32), ctypes.c_size_t, P(ctypes.c_size_t), P(ctypes.c_char_p)]
lib.kiln_eval.argtypes = [ctypes.c_void_p, P(ctypes.c_int32), ctypes.c_size_t, ctypes.c_int32,
                          P(ctypes.c_char_p)]
lib.kiln_logits.argtypes = [ctypes.c_void_p, P(ctypes.c_int32)]
lib.kiln_logits.restype = P(ctypes.c_float)
lib.kiln_session_free.argtypes = lib.kiln_model_free.argtypes = [ctypes.c_void_p]


def check(rc):
    if rc:
        sys.exit("distributed_logits: " + err.value.decode())


model = ctypes.c_void_p()
check(lib.kiln_model_load(artifact.encode(), 1, ctypes.byref(model), ctypes.byref(err)))
if tp:
    check(lib.kiln_model_distribute(model, tp, pp, dp, ctypes.byref(err)))
n_vocab = lib.kiln_model_n_vocab(model)
replica = lib.kiln_model_replica(model)
writer = lib.kiln_model_rank(model) == 0


def run_prompt(prompt):
    session = ctypes.c_void_p()
    check(lib.kiln_session_create(model, 256, ctypes.byref(session), ctypes.byref(err)))
    ids = (ctypes.c_int32 * 256)()
    n = ctypes.c_size_t()
    check(lib.kiln_tokenize(model, prompt.encode(), 1, 1, ids, 256, ctypes.byref(n), ctypes.byref(err)))
    tokens = list(ids[:n.value])
    rows = min(len(tokens), lib.kiln_model_max_tokens(model))

    def evaluate(batch, keep):
        arr = (ctypes.c_int32 * len(batch))(*batch)
        check(lib.kiln_eval(session, arr, len(batch), keep, ctypes.byref(err)))
        got = ctypes.c_int32()
        ptr = lib.kiln_logits(session, ctypes.byref(got))
        return np.ctypeslib.as_array(ptr, shape=(got.value, n_vocab)).copy()

    logits = [evaluate(tokens, rows)]
    for _ in range(STEPS):
        logits.append(evaluate([int(np.argmax(logits[-1][-1]))], 1))
    lib.kiln_session_free(session)
    return np.concatenate(logits)


for p in range(replica, prompt_count, max(dp, 1)):
    logits = run_prompt(PROMPTS[p])
    if writer:
        np.save(out_path.replace("{prompt}", str(p)), logits)
# Freeing the model ends its MPI communicator (MPI_Finalize): mpirun counts
# a rank that exits without it as failed.
lib.kiln_model_free(model)
