#!/usr/bin/env python3
"""Runs make_cases.py's kernel cases on a CUDA GPU (python3, numpy, libcuda).

  run_cases.py DIR [--tolerance 1e-4]

Loads each case's PTX with cuModuleLoadData, copies its arrays to the
device, launches its kernels in order with the geometry cases.json gives
(every buffer argument is one device pointer, every index an int64: the
bare-pointer convention of HostABI.h's launch), copies the output back and
prints max|y - expected| / max|expected|. Exits 1 if any case exceeds the
tolerance or fails to load or launch.
"""
import argparse, ctypes, json, os, sys
import numpy as np
import q8


def load_cuda():
    for name in (os.environ.get("KILN_LIBCUDA"), "libcuda.so.1", "libcuda.so"):
        if name:
            try:
                return ctypes.CDLL(name)
            except OSError:
                pass
    sys.exit("cannot load libcuda")


cuda = load_cuda()
# Every driver entry point with its C signature: without argtypes ctypes
# passes Python ints as 32-bit C ints, truncating sizes and host addresses.
_u64, _vp, _sz, _u32 = ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint
for _name, _args in {
        "cuInit": [_u32],
        "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
        "cuDevicePrimaryCtxRetain": [ctypes.POINTER(_vp), ctypes.c_int],
        "cuCtxSetCurrent": [_vp],
        "cuCtxSynchronize": [],
        "cuGetErrorString": [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)],
        "cuModuleLoadData": [ctypes.POINTER(_vp), ctypes.c_char_p],
        "cuModuleGetFunction": [ctypes.POINTER(_vp), _vp, ctypes.c_char_p],
        "cuModuleUnload": [_vp],
        "cuMemAlloc_v2": [ctypes.POINTER(_u64), _sz],
        "cuMemFree_v2": [_u64],
        "cuMemcpyHtoD_v2": [_u64, _vp, _sz],
        "cuMemcpyDtoH_v2": [_vp, _u64, _sz],
        "cuLaunchKernel": [_vp, _u32, _u32, _u32, _u32, _u32, _u32, _u32, _vp,
                           ctypes.POINTER(_vp), ctypes.POINTER(_vp)],
        "cuEventCreate": [ctypes.POINTER(_vp), _u32],
        "cuEventRecord": [_vp, _vp],
        "cuEventSynchronize": [_vp],
        "cuEventElapsedTime": [ctypes.POINTER(ctypes.c_float), _vp, _vp],
}.items():
    getattr(cuda, _name).argtypes = _args
    getattr(cuda, _name).restype = ctypes.c_int


def check(result, what):
    if result != 0:
        msg = ctypes.c_char_p()
        cuda.cuGetErrorString(result, ctypes.byref(msg))
        raise RuntimeError(f"{what}: CUDA error {result} "
                           f"({msg.value.decode() if msg.value else '?'})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--bench", action="store_true",
                    help="also time launches marked bench (20 runs, median)")
    a = ap.parse_args()
    check(cuda.cuInit(0), "cuInit")
    dev = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
    ctx = ctypes.c_void_p()
    check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "ctx")
    check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    cases = json.load(open(os.path.join(a.dir, "cases.json")))
    failures = checked = 0
    for case in cases:
        if case["output"] is None and not a.bench:
            continue
        try:
            err = run_case(a.dir, case, a.bench)
            if err is None:  # a benchmark only
                continue
            checked += 1
            ok = err <= a.tolerance
            print(f"{'PASS' if ok else 'FAIL'} {case['name']}: relative error {err:.3e}")
            failures += not ok
        except Exception as e:  # one line per case, then go on
            checked += 1
            print(f"FAIL {case['name']}: {e}")
            failures += 1
    print(f"{checked - failures}/{checked} checked cases pass")
    sys.exit(1 if failures else 0)


def time_launches(benched, weight_bytes):
    """Median of 30 single runs of the launches `benched` ((function, launch,
    parameter sets) in order; events around each run) and the mean of 200
    back-to-back runs; successive runs take successive input copies of the
    parameter sets, so the weights come from HBM rather than the 60 MB L2."""
    start, stop = ctypes.c_void_p(), ctypes.c_void_p()
    check(cuda.cuEventCreate(ctypes.byref(start), 0), "cuEventCreate")
    check(cuda.cuEventCreate(ctypes.byref(stop), 0), "cuEventCreate")
    copies = max(len(sets) for _, _, sets in benched)

    def run(i):
        for fn, launch, param_sets in benched:
            g, b = launch["grid"], launch["block"]
            check(cuda.cuLaunchKernel(fn, g[0], g[1], g[2], b[0], b[1], b[2], 0,
                                      None, param_sets[i % len(param_sets)],
                                      None), "cuLaunchKernel")

    def elapsed():
        check(cuda.cuEventSynchronize(stop), "cuEventSynchronize")
        ms = ctypes.c_float()
        check(cuda.cuEventElapsedTime(ctypes.byref(ms), start, stop), "time")
        return ms.value

    times = []
    for i in range(30):
        check(cuda.cuEventRecord(start, None), "cuEventRecord")
        run(i)
        check(cuda.cuEventRecord(stop, None), "cuEventRecord")
        times.append(elapsed())
    single = 1000 * float(np.median(times))
    check(cuda.cuEventRecord(start, None), "cuEventRecord")
    for i in range(200):
        run(i)
    check(cuda.cuEventRecord(stop, None), "cuEventRecord")
    each = 1000 * elapsed() / 200
    names = " + ".join(launch["kernel"] for _, launch, _ in benched)
    flop = sum(launch.get("flop", 0) for _, launch, _ in benched)
    print(f"  {names}: {single:.1f} us single, {each:.2f} us back to "
          f"back ({copies} input copies), "
          f"{weight_bytes / each / 1e3:.0f} GB/s of weights or KV cache"
          + (f", {flop / each / 1e6:.1f} TFLOP/s" if flop else ""))


def run_case(root, case, bench=False):
    ptx = open(os.path.join(root, case["ptx"]), "rb").read() + b"\0"
    module = ctypes.c_void_p()
    check(cuda.cuModuleLoadData(ctypes.byref(module), ptx), "cuModuleLoadData")
    data = np.load(os.path.join(root, case["data"]))
    device = {}
    try:
        for key in data.files:
            if key.startswith("expected_"):
                continue
            host = np.ascontiguousarray(data[key])
            ptr = ctypes.c_uint64()
            check(cuda.cuMemAlloc_v2(ctypes.byref(ptr), max(host.nbytes, 1)),
                  "cuMemAlloc")
            check(cuda.cuMemcpyHtoD_v2(ptr, host.ctypes.data, host.nbytes),
                  "cuMemcpyHtoD")
            device[key] = ptr
        copies = {}  # benchmarked weights: copies filling 256 MiB, rotated
        for launch in case["launches"]:
            for key, nbytes in launch.get("random_bytes", {}).items():
                host = np.random.default_rng(1).integers(
                    0, 256, nbytes, dtype=np.uint8)
                n = min(4096, max(1, (1 << 28) // nbytes)) if bench else 1
                for c in range(n):
                    ptr = ctypes.c_uint64()
                    check(cuda.cuMemAlloc_v2(ctypes.byref(ptr), nbytes),
                          "cuMemAlloc")
                    check(cuda.cuMemcpyHtoD_v2(ptr, host.ctypes.data, nbytes),
                          "cuMemcpyHtoD")
                    device[key if c == 0 else f"{key}#{c}"] = ptr
                    copies.setdefault(key, []).append(ptr)
        benched, bench_bytes, alive = [], 0, []
        for launch in case["launches"]:
            fn = ctypes.c_void_p()
            check(cuda.cuModuleGetFunction(ctypes.byref(fn), module,
                                           launch["kernel"].encode()),
                  "cuModuleGetFunction " + launch["kernel"])
            keep = []  # the parameter values the arrays point at

            def param_array(copy):
                values = []
                for arg in launch["args"]:
                    if isinstance(arg, str):
                        ptrs = copies.get(arg, [device[arg]])
                        values.append(ctypes.c_uint64(ptrs[copy % len(ptrs)].value))
                    else:
                        values.append(ctypes.c_int64(arg["index"]))
                keep.append(values)
                # A trailing null, which the driver never reads (it knows the
                # kernel's parameter count), lets a fake driver count them.
                return (ctypes.c_void_p * (len(values) + 1))(
                    *[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p)
                      for v in values], None)
            params = param_array(0)
            g, b = launch["grid"], launch["block"]
            check(cuda.cuLaunchKernel(fn, g[0], g[1], g[2], b[0], b[1], b[2], 0,
                                      None, params, None),
                  "cuLaunchKernel " + launch["kernel"])
            check(cuda.cuCtxSynchronize(), "kernel " + launch["kernel"])
            if bench and launch.get("bench"):
                n = max([len(v) for v in copies.values()] + [1])
                sets = [param_array(c) for c in range(n)]
                benched.append((fn, launch, sets))
                alive.append(keep)  # the values `sets` point at
                bench_bytes += launch.get("bytes", launch.get(
                    "random_bytes", {}).get("w", 0))
        if benched:
            time_launches(benched, bench_bytes)
        out = case["output"]
        if out is None:  # a benchmark only
            return None
        def fetch(key):
            host = np.empty_like(data[key])
            check(cuda.cuMemcpyDtoH_v2(host.ctypes.data, device[key],
                                       host.nbytes), "cuMemcpyDtoH")
            return host
        quantized = None
        if isinstance(out, dict):  # y, and its quantized copy
            out, quantized = out["y"], out["quantized"]
        y = fetch(out)
        if quantized:
            got, want = fetch(quantized), q8.packed(y)
            if not np.array_equal(got, want):
                bad = np.flatnonzero(got != want)
                raise RuntimeError(
                    f"{bad.size} bytes of {quantized} differ from y quantized "
                    f"in float32 (first at byte {bad[0]}: {got[bad[0]]} vs "
                    f"{want[bad[0]]})")
        expected = data["expected_" + out]
        return float(np.abs(y.astype(np.float64) - expected).max() /
                     max(np.abs(expected).max(), 1e-30))
    finally:
        for ptr in device.values():
            cuda.cuMemFree_v2(ptr)
        cuda.cuModuleUnload(module)


if __name__ == "__main__":
    main()
