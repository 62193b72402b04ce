"""Reads and writes Kiln's calibration statistics files (.kstats), as
lib/Calibration/CalibrationStats.h describes them: for each distinct input of
the linear layers, the weights that multiply it, mean |x| per column and the
mean of x x^T (the Hessian GPTQ and SparseGPT use); version 2 files (a
student collected beside its teacher) also the cross moments E[x y^T].

    n_tokens, inputs = read(path)   # inputs: [(weights, mean_abs, hessian)],
                                    # (..., cross) in version 2
    write(path, n_tokens, inputs)   # version 2 when the tuples carry cross
"""

import struct

import numpy as np

MAGIC = b"KILNSTAT"


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == MAGIC, "no KILNSTAT magic"
    version, n_inputs, n_tokens = struct.unpack_from("<IIQ", data, 8)
    assert version in (1, 2)
    pos, inputs = 24, []
    for _ in range(n_inputs):
        (n_weights,) = struct.unpack_from("<I", data, pos)
        pos += 4
        weights = []
        for _ in range(n_weights):
            (length,) = struct.unpack_from("<I", data, pos)
            weights.append(data[pos + 4:pos + 4 + length].decode())
            pos += 4 + length
        (cols,) = struct.unpack_from("<I", data, pos)
        pos += 4
        mean_abs = np.frombuffer(data, "<f4", cols, pos)
        pos += 4 * cols
        hessian = np.frombuffer(data, "<f4", cols * cols, pos).reshape(cols, cols)
        pos += 4 * cols * cols
        if version == 2:
            cross = np.frombuffer(data, "<f4", cols * cols, pos).reshape(cols, cols)
            pos += 4 * cols * cols
            inputs.append((weights, mean_abs, hessian, cross))
        else:
            inputs.append((weights, mean_abs, hessian))
    assert pos == len(data), "bytes after the last input"
    return n_tokens, inputs


def write(path, n_tokens, inputs):
    version = 2 if all(len(i) == 4 for i in inputs) else 1
    out = [MAGIC, struct.pack("<IIQ", version, len(inputs), n_tokens)]
    for weights, mean_abs, hessian, *cross in inputs:
        out.append(struct.pack("<I", len(weights)))
        for w in weights:
            out.append(struct.pack("<I", len(w.encode())) + w.encode())
        cols = len(mean_abs)
        out.append(struct.pack("<I", cols))
        out.append(np.asarray(mean_abs, "<f4").tobytes())
        out.append(np.asarray(hessian, "<f4").reshape(cols, cols).tobytes())
        if version == 2:
            out.append(np.asarray(cross[0], "<f4").reshape(cols, cols).tobytes())
    open(path, "wb").write(b"".join(out))
