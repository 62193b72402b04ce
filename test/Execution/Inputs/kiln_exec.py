"""Compile a kiln function with Kiln's CPU pipeline and call it on numpy arrays.

Execution tests build a one-op (or few-op) module, write its weights to a
file referenced through #kiln.external, compile it with `kiln-compile
--emit=so` for a CPU variant (kernels for generic vector code are checked
through `kiln-opt --convert-kiln-to-cpu`'s scratch size), and call
`_mlir_ciface_<name>` through ctypes with MLIR memref descriptors (the ABI of
include/kiln/runtime/HostABI.h). Several Python threads may call the same
function at once with different `tid`s; the barrier is a threading.Barrier.
"""

import ctypes
import os
import re
import subprocess
import tempfile
import threading

import numpy as np

TOOLS = os.environ.get("KILN_TOOLS_DIR", "")
LLVM_BIN = "/usr/lib/llvm-22/bin"


def run_tool(cmd, stdin=None):
    """Runs a compiler step; a failure raises with the tool's own message."""
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (os.path.basename(cmd[0]), proc.stderr))
    return proc.stdout


def tool(name):
    path = os.path.join(TOOLS, name) if TOOLS else name
    return path


class MemRef(ctypes.Structure):
    pass


def memref_type(rank):
    fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
              ("offset", ctypes.c_int64)]
    if rank:
        fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
    return type("MemRef%dD" % rank, (ctypes.Structure,), {"_fields_": fields})


def descriptor(array):
    assert array.flags["C_CONTIGUOUS"]
    t = memref_type(array.ndim)()
    t.allocated = t.aligned = array.ctypes.data
    t.offset = 0
    for i, (s, st) in enumerate(zip(array.shape, array.strides)):
        t.sizes[i] = s
        t.strides[i] = st // array.itemsize
    return t


BarrierFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class RtContext(ctypes.Structure):
    _fields_ = [("barrier", BarrierFn), ("pool", ctypes.c_void_p)]


class Compiled:
    """A kiln module lowered and loaded; `call` runs one of its functions."""

    def __init__(self, mlir_text, workdir, activations="f32", cpu="generic"):
        self.workdir = workdir
        src = os.path.join(workdir, "module.mlir")
        with open(src, "w") as f:
            f.write(mlir_text)
        convert = "--convert-kiln-to-cpu=activations=%s cpu=%s" % (activations, cpu)
        lowered = run_tool([tool("kiln-opt"), src, convert])
        self.scratch = {m.group(1): int(m.group(2)) for m in re.finditer(
            r"func\.func @(\w+)\(.*kiln\.scratch_bytes = (\d+)", lowered)}
        # The shared object comes from kiln-compile: the product's own code
        # generation (LLVM for the CPU variant, linked in-process with lld).
        so = os.path.join(workdir, "module.so")
        variant = "x86-64-v3" if cpu == "x86-64-v3" else "x86-64-v4"
        kernels = "generic" if cpu == "generic" else "native"
        run_tool([tool("kiln-compile"), "-q", src, "--emit=so", "--cpu=" + variant,
                  "--kernels=" + kernels, "--activations=" + activations, "-o", so])
        self.lib = ctypes.CDLL(so)

    def call(self, name, args, outs, weights, threads=1):
        """args: numpy arrays (memrefs) or ints (index); outs: numpy arrays
        written in place; weights: a numpy uint8 array (the weights file)."""
        fn = getattr(self.lib, "_mlir_ciface_" + name)
        scratch = np.zeros(max(self.scratch.get(name, 0), 64), dtype=np.uint8)
        keep = []

        def pack(a):
            if isinstance(a, np.ndarray):
                d = descriptor(a)
                keep.append(d)
                return ctypes.byref(d)
            return ctypes.c_int64(a)

        barrier = threading.Barrier(threads)
        cb = BarrierFn(lambda _: barrier.wait())
        rt = RtContext(cb, None)
        base = [pack(a) for a in list(args) + list(outs)] + [pack(weights), pack(scratch)]
        errors = []

        def run(tid):
            try:
                fn(*base, ctypes.byref(rt), ctypes.c_int32(tid), ctypes.c_int32(threads))
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        workers = [threading.Thread(target=run, args=(t,)) for t in range(1, threads)]
        for w in workers:
            w.start()
        run(0)
        for w in workers:
            w.join()
        if errors:
            raise errors[0]


def rel_error(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def check(name, got, want, tol):
    err = rel_error(got, want)
    status = "ok" if err <= tol else "FAIL"
    print("%-48s rel_err=%.3e tol=%.1e %s" % (name, err, tol, status))
    return err <= tol
