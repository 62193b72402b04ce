#!/usr/bin/env python3
"""Kernel execution cases for the CUDA lowering, to run on a GPU machine.

For each case: a one-op kiln module compiled here with
`kiln-compile --target=cuda --emit=ptx`, its inputs, and the expected output
computed in float64 numpy (weights dequantized by gguf-py, an implementation
independent of Kiln's). run_cases.py launches the kernels with the launch
geometry convert-kiln-to-gpu gives them and reports the relative error
max|y - expected| / max|expected| of each case.

  make_cases.py --kiln-compile build/bin/kiln-compile --out DIR
"""
import argparse, json, os, re, shutil, subprocess, sys
import numpy as np
import gguf
from gguf.quants import dequantize
from gguf import GGMLQuantizationType as Q
from q8 import quantize_activations, quantized_bytes

rng = np.random.default_rng(7)

# name: (quant type, values per block, bytes per block, kiln weight element)
FORMATS = {
    "f32": (Q.F32, 1, 4, "{n}x{k}xf32"),
    "f16": (Q.F16, 1, 2, "{n}x{k}xf16"),
    "q4_0": (Q.Q4_0, 32, 18, "{n}x{k}x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>"),
    "q4_1": (Q.Q4_1, 32, 20, "{n}x{k}x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>"),
    "q5_0": (Q.Q5_0, 32, 22, "{n}x{k}x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf>"),
    "q5_1": (Q.Q5_1, 32, 24, "{n}x{k}x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf>"),
    "q8_0": (Q.Q8_0, 32, 34, "{n}x{k}x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>"),
    "q4_K": (Q.Q4_K, 256, 144, "{n}x{k}x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>"),
    "q6_K": (Q.Q6_K, 256, 210, "{n}x{k}x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>"),
}
# The CUDA target's split layout of Q4_0, Q4_1 and Q8_0 (kiln-pack-weights
# {target=cuda}): the same blocks, codes apart from their headers.
for _base in ("q4_0", "q4_1", "q8_0"):
    _q, _bv, _bb, _t = FORMATS[_base]
    FORMATS[_base + "_split"] = (_q, _bv, _bb, _t.replace(
        "layout = gguf>", "layout = gguf, target_layout = #kiln_gpu.split>"))


def base_format(fmt):
    return fmt.removesuffix("_split")


def split_layout(fmt, data, n, k):
    """GGUF blocks of `fmt` in the split layout, written from
    lib/Conversion/KilnToGPU/IR/SplitLayout.h: every row's codes (in 16-byte
    planes: plane p of a row holds bytes [16p, 16p + 16) of each block's
    codes), then every block's header (d; d, m for Q4_1), row by row."""
    header = 4 if fmt == "q4_1" else 2
    code = FORMATS[fmt][2] - header
    src = np.frombuffer(data, np.uint8).reshape(n, k // 32, header + code)
    planes = src[:, :, header:].reshape(n, k // 32, code // 16, 16)
    return planes.transpose(0, 2, 1, 3).tobytes() + src[:, :, :header].tobytes()


def weight_bytes(fmt, n, k):
    """Random weight bytes of `fmt` as the kernel reads them, and the
    weight gguf-py dequantizes from their GGUF blocks."""
    base = base_format(fmt)
    data, w = random_weight(base, n, k)
    if fmt != base:
        data = split_layout(base, data, n, k)
    return data, w


def f16_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(-1, 2)


def random_weight(fmt, n, k):
    """Random bytes of an [n, k] weight whose scales are sane f16 values."""
    qtype, bv, bb, _ = FORMATS[fmt]
    if fmt == "f32":
        w = rng.standard_normal((n, k)).astype(np.float32)
        return w.tobytes(), w.astype(np.float64)
    if fmt == "f16":
        w = rng.standard_normal((n, k)).astype(np.float16)
        return w.tobytes(), w.astype(np.float64)
    blocks = n * k // bv
    raw = rng.integers(0, 256, size=(blocks, bb), dtype=np.uint8)
    d = f16_bytes(rng.uniform(0.001, 0.02, blocks))
    if fmt in ("q4_0", "q5_0", "q8_0"):
        raw[:, 0:2] = d
    elif fmt in ("q4_1", "q5_1"):
        raw[:, 0:2] = d
        raw[:, 2:4] = f16_bytes(rng.uniform(-0.1, 0.1, blocks))
    elif fmt == "q4_K":
        raw[:, 0:2] = d
        raw[:, 2:4] = f16_bytes(rng.uniform(0.0, 0.01, blocks))
    elif fmt == "q6_K":
        raw[:, 208:210] = d
    data = raw.tobytes()
    w = dequantize(np.frombuffer(data, dtype=np.uint8).reshape(n, -1), qtype)
    return data, np.asarray(w, dtype=np.float64).reshape(n, k)


def compile_ptx(kiln_compile, mlir_text, path, activations="f32"):
    """kiln-compile's PTX of `mlir_text`; f32 activations unless asked (the
    int8 decode GEMV has cases of its own)."""
    with open(path + ".mlir", "w") as f:
        f.write(mlir_text)
    subprocess.check_call([kiln_compile, "--target=cuda", "--emit=ptx", "-q",
                           f"--activations={activations}",
                           path + ".mlir", "-o", path + ".ptx"])
    entries = []
    for line in open(path + ".ptx"):
        if line.startswith(".visible .entry "):
            entries.append(line.split()[2].split("(")[0])
    return os.path.basename(path) + ".ptx", entries


def decode_launch(kernel, n):
    """The decode GEMV's launch: 4 warps a block, R rows a warp for _rR
    (also inside the name: _r2_seg2)."""
    rows = 4 * int((re.findall(r"_r(\d+)", kernel) or ["1"])[0])
    return {"kernel": kernel, "grid": [(n + rows - 1) // rows, 1, 1],
            "block": [128, 1, 1], "args": ["x", "w", "y"]}


def gemv_case(kc, out, fmt, n, k, t):
    name = f"gemv_{fmt}_{n}x{k}_t{t}"
    wtype = FORMATS[fmt][3].format(n=n, k=k)
    data, w = weight_bytes(fmt, n, k)
    x = rng.standard_normal((t, k)).astype(np.float32)
    mlir = f'''func.func @forward(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 16}} {{
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = {len(data)}> -> !kiln.weight<{wtype}>
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{wtype}> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
'''
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name))
    expected = x.astype(np.float64) @ w.T
    arrays = {"x": x, "w": np.frombuffer(data, dtype=np.uint8),
              "y": np.zeros((t, n), np.float32), "expected_y": expected}
    if t == 1:  # the decode kernel
        launches = [decode_launch(entries[0], n)]
    else:  # the prefill kernel: 4 tokens per warp
        prefill = [e for e in entries if e.endswith("_t4")][0]
        launches = [{"kernel": prefill, "grid": [(n + 3) // 4, (t + 3) // 4, 1],
                     "block": [128, 1, 1], "args": ["x", "w", "y", {"index": t}]}]
    return name, ptx, arrays, launches, "y"


def gemv_q8_case(kc, out, fmt, n, k):
    """The decode GEMV over int8 activations (split Q4_0, Q4_1, Q8_0): the
    quantization kernel, then the dp4a GEMV. The float64 reference
    multiplies the dequantized codes (scale * code) with the weights, and for
    Q4_1 takes the min's term from the f16-rounded scale * sum, as the
    kernel (and ggml) does; the rest is exact integer arithmetic, so the
    error left is f32 accumulation."""
    name = f"gemv_q8_{fmt}_{n}x{k}"
    wtype = FORMATS[fmt][3].format(n=n, k=k)
    base = base_format(fmt)
    raw, w = random_weight(base, n, k)
    data = split_layout(base, raw, n, k)
    x = (rng.standard_normal((1, k)) * 3).astype(np.float32)
    mlir = f'''func.func @forward(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 16}} {{
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = {len(data)}> -> !kiln.weight<{wtype}>
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{wtype}> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
'''
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name), "int8")
    codes, scale, sums, scaled_sums = quantize_activations(x[0])
    xq = (codes * scale[:, None]).reshape(1, k)
    expected = xq @ w.T
    if base == "q4_1":
        m = np.frombuffer(raw, np.uint8).reshape(n, k // 32, 20)[:, :, 2:4]
        m = m.copy().view(np.float16)[:, :, 0].astype(np.float64)
        expected += (m * (scaled_sums - scale * sums)[None, :]).sum(axis=1)
    arrays = {"x": x, "w": np.frombuffer(data, dtype=np.uint8),
              "q": np.zeros(quantized_bytes(k), np.uint8),
              "y": np.zeros((1, n), np.float32), "expected_y": expected}
    quantize = [e for e in entries if e.startswith("kiln_quantize_a8_")][0]
    gemv = [e for e in entries if e.endswith("_q8")][0]
    launches = [{"kernel": quantize, "grid": [-(-k // 4 // 128), 1, 1],
                 "block": [128, 1, 1], "args": ["x", "q"]},
                dict(decode_launch(gemv.removesuffix("_q8"), n), kernel=gemv,
                     args=["q", "w", "y"])]
    return name, ptx, arrays, launches, "y"


def rope_reference(y, heads, hd, pos, base):
    """Llama-style rope (pairs 2i, 2i + 1) of one token's rows, float64."""
    e = np.asarray(y, np.float64).reshape(heads, hd).copy()
    for i in range(hd // 2):
        angle = pos * base ** (-2.0 * i / hd)
        x0, x1 = e[:, 2 * i].copy(), e[:, 2 * i + 1].copy()
        e[:, 2 * i] = x0 * np.cos(angle) - x1 * np.sin(angle)
        e[:, 2 * i + 1] = x0 * np.sin(angle) + x1 * np.cos(angle)
    return e.reshape(1, -1)


def gemv_rope_case(kc, out, fmt, heads, hd, k, pos):
    """The decode GEMV with kiln-fuse's rope epilogue (a query or key
    projection): two rows a warp, rotated as a pair by lane 0. Q4_0 split
    over int8 activations (the reference multiplies the quantized codes, as
    gemv_q8_case), or f32 weights staged in shared memory."""
    n = heads * hd
    name = f"gemv_rope_{fmt}_{n}x{k}_p{pos}"
    base_freq = 10000.0
    wtype = FORMATS[fmt][3].format(n=n, k=k)
    x = (rng.standard_normal((1, k)) * 3).astype(np.float32)
    data, w64 = random_weight(base_format(fmt), n, k)
    if fmt.endswith("_split"):
        data = split_layout(base_format(fmt), data, n, k)
    mlir = f'''func.func @forward(%x: tensor<?x{k}xf32>, %p: index) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 16}} {{
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = {len(data)}> -> !kiln.weight<{wtype}>
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{wtype}> -> tensor<?x{n}xf32>
  %r = kiln.rope %y, %p {{freq_base = {base_freq:e} : f32, head_dim = {hd} : i64, num_heads = {heads} : i64, rotary_dim = {hd} : i64, style = #kiln.rope_style<llama>}} : tensor<?x{n}xf32> -> tensor<?x{n}xf32>
  return %r : tensor<?x{n}xf32>
}}
'''
    quantized = fmt != "f32"
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name),
                               "int8" if quantized else "f32")
    gemv = [e for e in entries if "_rope" in e]
    assert gemv, f"no rope epilogue in {entries}"
    arrays = {"x": x, "w": np.frombuffer(data, dtype=np.uint8),
              "y": np.zeros((1, n), np.float32)}
    launch = dict(decode_launch(gemv[0], n), kernel=gemv[0],
                  args=["x", "w", "y", {"index": pos}])
    launches = [launch]
    if quantized:
        codes, scale, _, _ = quantize_activations(x[0])
        product = (codes * scale[:, None]).reshape(1, k) @ w64.T
        arrays["q"] = np.zeros(quantized_bytes(k), np.uint8)
        launch["args"] = ["q", "w", "y", {"index": pos}]
        launches = [{"kernel": [e for e in entries if e.startswith(
                         "kiln_quantize_a8_")][0],
                     "grid": [-(-k // 4 // 128), 1, 1], "block": [128, 1, 1],
                     "args": ["x", "q"]}, launch]
    else:
        product = x.astype(np.float64) @ w64.T
    arrays["expected_y"] = rope_reference(product, heads, hd, pos, base_freq)
    return name, ptx, arrays, launches, "y"


def mma_launch(entries, n, t, tiling=None):
    """The tensor-core GEMM's launch (LinearMma.cpp): from 64 tokens the
    _m64 kernel (64 tokens x 128 rows a block), else _m16 (16 x 64 where 64
    divides n, else 16 x 32); or the
    kernel of `tiling` (64 or 16)."""
    tiling = tiling or (64 if t >= 64 else 16)
    tokens, rows = (64, 128) if tiling == 64 else (16, 64 if n % 64 == 0 else 32)
    kernel = [e for e in entries if e.startswith("kiln_gemm_mma_")
              and e.endswith(f"_m{tokens}")][0]
    return {"kernel": kernel, "grid": [-(-n // rows), -(-t // tokens), 1],
            "block": [128, 1, 1], "args": ["x", "w", "y", {"index": t}]}


def mma_mlir(n, k, size, wtype, max_tokens=512):
    return f'''func.func @forward(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = {max_tokens}}} {{
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = {size}> -> !kiln.weight<{wtype}>
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{wtype}> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
'''


def mma_case(kc, out, n, k, t, fmt="q4_0_split"):
    """The tensor-core GEMM over Q4_0 or Q8_0 in the split layout at t >= 16
    tokens. Its A operand is x rounded to f16 (cvt.rn, as numpy's astype),
    so the float64 reference multiplies that x: the weights are exact in the
    kernel, and f32 accumulation is its only other rounding."""
    name = f"mma_{fmt}_{n}x{k}_t{t}"
    wtype = FORMATS[fmt][3].format(n=n, k=k)
    data, w = weight_bytes(fmt, n, k)
    x = rng.standard_normal((t, k)).astype(np.float32)
    ptx, entries = compile_ptx(kc, mma_mlir(n, k, len(data), wtype),
                               os.path.join(out, name))
    expected = x.astype(np.float16).astype(np.float64) @ w.T
    arrays = {"x": x, "w": np.frombuffer(data, dtype=np.uint8),
              "y": np.zeros((t, n), np.float32), "expected_y": expected}
    return name, ptx, arrays, [mma_launch(entries, n, t)], "y"


def mma_bench(kc, out, n, k, t, tiling=None, fmt="q4_0_split"):
    """The GEMM alone for --bench: weights of random bytes made on the
    device, x zeros (the time does not depend on the values; the case files
    stay small); `tiling` forces a kernel."""
    name = f"bench_mma_{fmt}_{n}x{k}_t{t}" + (f"_m{tiling}" if tiling else "")
    wtype = FORMATS[fmt][3].format(n=n, k=k)
    size = n * k // 32 * FORMATS[fmt][2]
    ptx, entries = compile_ptx(kc, mma_mlir(n, k, size, wtype),
                               os.path.join(out, name))
    arrays = {"x": np.zeros((t, k), np.float32),
              "y": np.zeros((t, n), np.float32)}
    launch = dict(mma_launch(entries, n, t, tiling), bench=True,
                  random_bytes={"w": size}, flop=2 * t * n * k)
    return name, ptx, arrays, [launch], None


def norm_case(kc, out, t, dim, eps, layer=False):
    """rms_norm, or layer_norm with a bias. The lowering picks by the width:
    128-bit loads held in registers (dim % 128 == 0, up to 4096), scalars held
    (dim % 32 == 0), else a strided loop."""
    name = f"{'layer' if layer else 'rms'}_norm_{dim}_t{t}"
    x = rng.standard_normal((t, dim)).astype(np.float32) + (0.5 if layer else 0.0)
    w = rng.standard_normal(dim).astype(np.float32)
    bias = rng.standard_normal(dim).astype(np.float32)
    wt = f"!kiln.weight<{dim}xf32>"
    if layer:
        op = f"kiln.layer_norm %x, %w, bias %b {{epsilon = {eps:e} : f32}} : tensor<?x{dim}xf32>, {wt}, {wt}"
    else:
        op = f"kiln.rms_norm %x, %w {{epsilon = {eps:e} : f32}} : tensor<?x{dim}xf32>, {wt}"
    mlir = f'''func.func @forward(%x: tensor<?x{dim}xf32>) -> tensor<?x{dim}xf32> attributes {{kiln.max_tokens = 16}} {{
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = {4 * dim}> -> {wt}
  %b = kiln.weight #kiln.external<"w.bin", offset = {4 * dim}, size = {4 * dim}> -> {wt}
  %y = {op} -> tensor<?x{dim}xf32>
  return %y : tensor<?x{dim}xf32>
}}
'''
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name))
    x64 = x.astype(np.float64)
    if layer:
        c = x64 - x64.mean(axis=1, keepdims=True)
        expected = c / np.sqrt((c ** 2).mean(axis=1, keepdims=True) + eps) * w + bias
    else:
        expected = x64 / np.sqrt((x64 ** 2).mean(axis=1, keepdims=True) + eps) * w
    arrays = {"x": x, "w": w, "y": np.zeros_like(x), "expected_y": expected}
    args = ["x", "w", "y"]
    if layer:
        arrays["b"] = bias
        args = ["x", "w", "b", "y"]
    launches = [{"kernel": entries[0], "grid": [t, 1, 1],
                 "block": [norm_threads(entries[0]), 1, 1], "args": args}]
    return name, ptx, arrays, launches, "y"


def norm_threads(kernel):
    """A norm's block: a warp a row, or the _wW warps in its name."""
    return 32 * int((re.findall(r"_w(\d+)", kernel) or ["1"])[0])


def quantizing_case(kc, out, op, dim):
    """One token through a norm or SwiGLU whose result an int8 GEMV reads:
    kiln-fuse marks it kiln.quantize_output, and its decode kernel also
    writes the quantized copy (q). y is checked against float64; q, exactly,
    against the kernel's own y quantized in float32 (q8.py), byte for byte."""
    name = f"{op}_q8_{dim}"
    x = (rng.standard_normal((1, dim)) * 3).astype(np.float32)
    b = rng.standard_normal((1, dim)).astype(np.float32)
    w = rng.standard_normal(dim).astype(np.float32)
    wt = f"!kiln.weight<{dim}xf32>"
    lt = FORMATS["q4_0_split"][3].format(n=64, k=dim)
    if op == "rms_norm":
        line = f"%y = kiln.rms_norm %x, %w {{epsilon = 1.0e-05 : f32}} : tensor<?x{dim}xf32>, {wt} -> tensor<?x{dim}xf32>"
    else:
        line = f"%y = kiln.swiglu %x, %b : tensor<?x{dim}xf32>"
    mlir = f'''func.func @forward(%x: tensor<?x{dim}xf32>, %b: tensor<?x{dim}xf32>) -> (tensor<?x{dim}xf32>, tensor<?x64xf32>) attributes {{kiln.max_tokens = 16}} {{
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = {4 * dim}> -> {wt}
  %l = kiln.weight #kiln.external<"w.bin", offset = {4 * dim}, size = {64 * dim // 32 * 18}> -> !kiln.weight<{lt}>
  {line}
  %z = kiln.linear %y, %l : tensor<?x{dim}xf32>, !kiln.weight<{lt}> -> tensor<?x64xf32>
  return %y, %z : tensor<?x{dim}xf32>, tensor<?x64xf32>
}}
'''
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name), "int8")
    x64 = x.astype(np.float64)
    if op == "rms_norm":
        expected = x64 / np.sqrt((x64 ** 2).mean(axis=1, keepdims=True) + 1e-5) * w
    else:
        expected = x64 / (1 + np.exp(-x64)) * b.astype(np.float64)
    kernel = [e for e in entries if e.startswith(f"kiln_{op}") and e.endswith("_q8")]
    assert kernel, f"no quantizing {op} kernel in {entries}"
    arrays = {"x": x, "b": b, "w": w, "y": np.zeros_like(x), "expected_y": expected,
              "q": np.zeros(quantized_bytes(dim), np.uint8)}
    if op == "rms_norm":
        launch = {"kernel": kernel[0], "grid": [1, 1, 1],
                  "block": [norm_threads(kernel[0]), 1, 1], "args": ["x", "w", "y", "q"]}
    else:
        launch = {"kernel": kernel[0], "grid": [-(-dim // 4 // 256), 1, 1],
                  "block": [256, 1, 1], "args": ["x", "b", "y", "q"]}
    return name, ptx, arrays, [launch], {"y": "y", "quantized": "q"}


def rope_case(kc, out, style, t, heads, hd, rot, pos, base):
    name = f"rope_{style}_{heads}x{hd}_r{rot}_p{pos}_t{t}"
    x = rng.standard_normal((t, heads * hd)).astype(np.float32)
    mlir = f'''func.func @forward(%x: tensor<?x{heads * hd}xf32>, %pos: index) -> tensor<?x{heads * hd}xf32> attributes {{kiln.max_tokens = 16}} {{
  %y = kiln.rope %x, %pos {{freq_base = {base:e} : f32, head_dim = {hd} : i64, num_heads = {heads} : i64, rotary_dim = {rot} : i64, style = #kiln.rope_style<{style}>}} : tensor<?x{heads * hd}xf32> -> tensor<?x{heads * hd}xf32>
  return %y : tensor<?x{heads * hd}xf32>
}}
'''
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name))
    e = x.astype(np.float64).reshape(t, heads, hd).copy()
    half = rot // 2
    for ti in range(t):
        for i in range(half):
            angle = (pos + ti) * base ** (-2.0 * i / rot)
            a, c = (i, i + half) if style == "neox" else (2 * i, 2 * i + 1)
            x0, x1 = e[ti, :, a].copy(), e[ti, :, c].copy()
            e[ti, :, a] = x0 * np.cos(angle) - x1 * np.sin(angle)
            e[ti, :, c] = x0 * np.sin(angle) + x1 * np.cos(angle)
    arrays = {"x": x, "y": np.zeros_like(x), "expected_y": e.reshape(t, -1)}
    launches = [{"kernel": entries[0], "grid": [t, heads, 1], "block": [32, 1, 1],
                 "args": ["x", "y", {"index": pos}]}]
    return name, ptx, arrays, launches, "y"


def elementwise_case(kc, out, op, t, dim):
    name = f"{op}_{dim}_t{t}"
    a = rng.standard_normal((t, dim)).astype(np.float32)
    b = rng.standard_normal((t, dim)).astype(np.float32)
    binary = op in ("add", "mul", "swiglu")
    args = "%a, %b" if binary else "%a"
    mlir = f'''func.func @forward(%a: tensor<?x{dim}xf32>, %b: tensor<?x{dim}xf32>) -> tensor<?x{dim}xf32> attributes {{kiln.max_tokens = 16}} {{
  %y = kiln.{op} {args} : tensor<?x{dim}xf32>
  return %y : tensor<?x{dim}xf32>
}}
'''
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    silu = a64 / (1 + np.exp(-a64))
    gelu = 0.5 * a64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (a64 + 0.044715 * a64 ** 3)))
    expected = {"add": a64 + b64, "mul": a64 * b64, "swiglu": silu * b64,
                "silu": silu, "gelu": gelu}[op]
    arrays = {"a": a, "b": b, "y": np.zeros_like(a), "expected_y": expected}
    count = t * dim
    launches = [{"kernel": entries[0], "grid": [(count + 255) // 256, 1, 1],
                 "block": [256, 1, 1],
                 "args": ["a", "b", "y", {"index": count}] if binary
                 else ["a", "y", {"index": count}]}]
    return name, ptx, arrays, launches, "y"


def embedding_case(kc, out, fmt, vocab, dim, t):
    name = f"embedding_{fmt}_{vocab}x{dim}_t{t}"
    wtype = FORMATS[fmt][3].format(n=vocab, k=dim)
    data, w = weight_bytes(fmt, vocab, dim)
    ids = rng.integers(0, vocab, size=t).astype(np.int32)
    mlir = f'''func.func @forward(%ids: tensor<?xi32>) -> tensor<?x{dim}xf32> attributes {{kiln.max_tokens = 16}} {{
  %t = kiln.weight #kiln.external<"w.bin", offset = 0, size = {len(data)}> -> !kiln.weight<{wtype}>
  %y = kiln.embedding %t[%ids] : !kiln.weight<{wtype}>, tensor<?xi32> -> tensor<?x{dim}xf32>
  return %y : tensor<?x{dim}xf32>
}}
'''
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name))
    arrays = {"w": np.frombuffer(data, dtype=np.uint8), "ids": ids,
              "y": np.zeros((t, dim), np.float32), "expected_y": w[ids]}
    launches = [{"kernel": entries[0], "grid": [t, 1, 1], "block": [32, 1, 1],
                 "args": ["w", "ids", "y"]}]
    return name, ptx, arrays, launches, "y"


def attend_block(kernel):
    """One block per (token, head) of the warps the name ends with (_splitN;
    one warp before the split)."""
    warps = int(kernel.rsplit("_split", 1)[1]) if "_split" in kernel else 1
    return [32 * warps, 1, 1]


def attention_mlir(t, heads, kv, hd, ctx, layers, window, softcap):
    scale = 1.0 / np.sqrt(hd)
    extra = f", sliding_window = {window}" if window else ""
    extra += f", softcap = {softcap:e} : f32" if softcap else ""
    return f'''func.func @forward(%q: tensor<?x{heads * hd}xf32>, %k: tensor<?x{kv * hd}xf32>, %v: tensor<?x{kv * hd}xf32>, %cache: !kiln.kv_cache<{layers}x{ctx}x{kv}x{hd}xf32>, %pos: index) -> tensor<?x{heads * hd}xf32> attributes {{kiln.max_tokens = 16}} {{
  %y = kiln.attention %q, %k, %v, %cache[%pos] {{layer = {layers - 1} : i64, num_heads = {heads} : i64, scale = {scale:e} : f32{extra}}} : tensor<?x{heads * hd}xf32>, tensor<?x{kv * hd}xf32>, tensor<?x{kv * hd}xf32>, !kiln.kv_cache<{layers}x{ctx}x{kv}x{hd}xf32> -> tensor<?x{heads * hd}xf32>
  return %y : tensor<?x{heads * hd}xf32>
}}
'''


def attend_launches(entries, t, pos, heads, kv):
    """The attention launches after the append: one block per (token, head),
    or at one token the split decode (one block per (chunk, KV head), the
    chunk in its name) and the merge of a head's chunks, through `work`."""
    decode = [e for e in entries if e.startswith("kiln_attention_decode")]
    if t == 1 and decode:
        chunk, warps = map(int, decode[0].rsplit("_chunk", 1)[1].split("_warps"))
        combine = [e for e in entries if e.startswith("kiln_attention_combine")][0]
        return [{"kernel": decode[0], "grid": [0, kv, 1],
                 "block": [32 * warps, 1, 1],
                 "args": ["q", "cache", "work", {"index": pos}], "chunk": chunk},
                {"kernel": combine, "grid": [heads, 1, 1], "block": [128, 1, 1],
                 "args": ["work", "y", {"index": pos}]}]
    attend = [e for e in entries if e.startswith("kiln_attention")
              and "_decode_" not in e and "_combine_" not in e][0]
    return [{"kernel": attend, "grid": [t, heads, 1], "block": attend_block(attend),
             "args": ["q", "cache", "y", {"index": pos}, {"index": t}]}]


def with_workspace(arrays, launches, heads, hd, ctx):
    """Sizes the split decode's grid and workspace (per head and chunk: a
    maximum, a sum and hd outputs)."""
    for launch in launches:
        if "chunk" in launch:
            chunks = -(-ctx // launch.pop("chunk"))
            launch["grid"][0] = chunks
            arrays["work"] = np.zeros(heads * chunks * (hd + 2), np.float32)


def attention_case(kc, out, t, pos, heads, kv, hd, ctx, layers=1, window=0,
                   softcap=0.0):
    name = f"attention_h{heads}_kv{kv}_d{hd}_p{pos}_t{t}"
    name += f"_L{layers}" if layers > 1 else ""
    name += f"_w{window}" if window else ""
    name += "_cap" if softcap else ""
    scale = 1.0 / np.sqrt(hd)
    q = rng.standard_normal((t, heads * hd)).astype(np.float32)
    k = rng.standard_normal((t, kv * hd)).astype(np.float32)
    v = rng.standard_normal((t, kv * hd)).astype(np.float32)
    cache = rng.standard_normal((2, layers, ctx, kv * hd)).astype(np.float32)
    mlir = attention_mlir(t, heads, kv, hd, ctx, layers, window, softcap)
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name))
    layer = layers - 1
    c = cache.astype(np.float64).copy()
    c[0, layer, pos:pos + t] = k
    c[1, layer, pos:pos + t] = v
    expected = np.zeros((t, heads, hd))
    for ti in range(t):
        end = pos + ti + 1
        start = max(0, end - window) if window else 0
        for h in range(heads):
            g = h // (heads // kv)
            keys = c[0, layer, start:end, g * hd:(g + 1) * hd]
            vals = c[1, layer, start:end, g * hd:(g + 1) * hd]
            s = keys @ q[ti, h * hd:(h + 1) * hd].astype(np.float64) * scale
            if softcap:
                s = np.tanh(s / softcap) * softcap
            p = np.exp(s - s.max())
            expected[ti, h] = p @ vals / p.sum()
    arrays = {"q": q, "k": k, "v": v, "cache": cache,
              "y": np.zeros_like(q), "expected_y": expected.reshape(t, -1)}
    append = [e for e in entries if e.startswith("kiln_kv_append")][0]
    launches = [
        # One thread per value of the KV row: the lowering's kAppendThreads.
        {"kernel": append, "grid": [t, 1, 1], "block": [1024, 1, 1],
         "args": ["k", "v", "cache", {"index": pos}]}]
    launches += attend_launches(entries, t, pos, heads, kv)
    with_workspace(arrays, launches, heads, hd, ctx)
    return name, ptx, arrays, launches, "y"


def attention_bench(kc, out, pos, heads, kv, hd, ctx):
    """The decode attention kernels alone at position pos, for --bench only:
    its KV cache random bytes made on the device (nothing is checked)."""
    name = f"bench_attention_h{heads}_kv{kv}_d{hd}_p{pos}"
    mlir = attention_mlir(1, heads, kv, hd, ctx, 1, 0, 0.0)
    ptx, entries = compile_ptx(kc, mlir, os.path.join(out, name))
    arrays = {"q": rng.standard_normal((1, heads * hd)).astype(np.float32),
              "y": np.zeros((1, heads * hd), np.float32)}
    launches = attend_launches(entries, 1, pos, heads, kv)
    with_workspace(arrays, launches, heads, hd, ctx)
    for launch in launches:
        launch["bench"] = True
    launches[0]["bytes"] = 2 * (pos + 1) * kv * hd * 4
    launches[0]["random_bytes"] = {"cache": 2 * ctx * kv * hd * 4}
    return name, ptx, arrays, launches, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln-compile", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default="",
                    help="keep the cases whose names start with one of these "
                    "comma-separated prefixes")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    kc = a.kiln_compile
    cases = []
    for fmt in FORMATS:
        shapes = [(64, 256, 1), (256, 512, 3)] if fmt.endswith("K") else \
                 [(64, 64, 1), (576, 576, 1), (1536, 576, 3)]
        for n, k, t in shapes:
            cases.append(gemv_case(kc, a.out, fmt, n, k, t))
    cases.append(gemv_case(kc, a.out, "q4_1", 576, 576, 9))
    # Two rows per warp (n >= 2048), an odd n leaving the last warp one row;
    # and activations too large to stage (the unstaged decode kernel).
    for fmt in ("f16", "q4_0", "q4_1", "q8_0", "q4_K", "q6_K", "q4_0_split",
                "q4_1_split", "q8_0_split"):
        cases.append(gemv_case(kc, a.out, fmt, 2053, 512, 1))
    cases.append(gemv_case(kc, a.out, "q4_0", 64, 12800, 1))
    # The int8 decode GEMV: each format, one and two rows a warp, K = 14336
    # (staged whole: a third of its f32 size), a partial quantization block
    # of threads (K = 576: 144 of 256 threads store).
    for fmt in ("q4_0_split", "q4_1_split", "q8_0_split"):
        for n, k in ((64, 576), (2053, 512), (64, 14336)):
            cases.append(gemv_q8_case(kc, a.out, fmt, n, k))
    cases.append(gemv_q8_case(kc, a.out, "q4_0_split", 2048, 2048))
    # The rope epilogue: a key projection's shape (2 heads of 64: fewer rows
    # than take pairs otherwise) over int8 activations, and f32 weights
    # staged in shared memory (4 heads of 32).
    cases.append(gemv_rope_case(kc, a.out, "q4_0_split", 2, 64, 512, 37))
    cases.append(gemv_rope_case(kc, a.out, "q4_0_split", 32, 128, 4096, 1000))
    cases.append(gemv_rope_case(kc, a.out, "f32", 4, 32, 256, 5))
    # The split layout's decode GEMV: four chunks of one row in flight (64 x
    # 4096), two of each of two rows (2048 x 2048, Q4_0 only: the loop does
    # not depend on the format), and the unstaged kernel (K = 12800).
    cases.append(gemv_case(kc, a.out, "q4_0_split", 2048, 2048, 1))
    for fmt in ("q4_0_split", "q4_1_split", "q8_0_split"):
        for n, k in ((64, 4096), (64, 12800)):
            cases.append(gemv_case(kc, a.out, fmt, n, k, 1))
    # Decode-size GEMVs for --bench only: 14336 x 4096 (llama-3-8B's MLP)
    # and SmolLM2's Q4_1 shapes, weights of random bytes made on the device
    # (nothing is checked), so the case files stay small.
    shapes = [(fmt, 14336, 4096) for fmt in
              ("q4_0", "q4_1", "q8_0", "q4_K", "q6_K", "f16", "q4_0_split",
               "q4_1_split", "q8_0_split")]
    shapes += [(fmt, 4096, 4096) for fmt in
               ("q4_0", "q4_0_split", "q4_1_split", "q8_0_split", "f16")]
    # The down projection (K = 14336: its activations do not fit in shared
    # memory) and the 8B shape's 1024 x 4096.
    shapes += [("q4_0_split", 4096, 14336), ("q4_0_split", 1024, 4096)]
    shapes += [(fmt, n, k) for fmt in ("q4_1", "q4_1_split") for n, k in
               ((576, 576), (1536, 576), (576, 1536), (49152, 576))]
    for fmt, n, k in shapes:
        wtype = FORMATS[fmt][3].format(n=n, k=k)
        _, bv, bb, _ = FORMATS[fmt]
        size = n * k // bv * bb
        name = f"bench_gemv_{fmt}_{n}x{k}"
        mlir = f'''func.func @forward(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 16}} {{
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = {size}> -> !kiln.weight<{wtype}>
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{wtype}> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
'''
        ptx, entries = compile_ptx(kc, mlir, os.path.join(a.out, name))
        arrays = {"x": rng.standard_normal((1, k)).astype(np.float32),
                  "y": np.zeros((1, n), np.float32)}
        launches = [dict(decode_launch(entries[0], n), bench=True,
                         random_bytes={"w": size})]
        cases.append((name, ptx, arrays, launches, None))
        if not fmt.endswith("_split"):
            continue
        # The same over int8 activations: the GEMV timed alone after one
        # quantization, and the quantization alone.
        name = f"bench_gemv_q8_{fmt}_{n}x{k}"
        ptx, entries = compile_ptx(kc, mlir, os.path.join(a.out, name), "int8")
        arrays = dict(arrays, q=np.zeros(quantized_bytes(k), np.uint8))
        quantize = {"kernel": [e for e in entries if e.startswith(
                        "kiln_quantize_a8_")][0],
                    "grid": [-(-k // 4 // 128), 1, 1], "block": [128, 1, 1],
                    "args": ["x", "q"]}
        gemv = [e for e in entries if e.endswith("_q8")][0]
        launches = [quantize, dict(decode_launch(gemv.removesuffix("_q8"), n),
                                   kernel=gemv, args=["q", "w", "y"],
                                   bench=True, random_bytes={"w": size})]
        cases.append((name, ptx, arrays, launches, None))
        qname = f"bench_quantize_a8_{k}"
        if qname not in [c[0] for c in cases]:
            # Each case's files carry its name (run_each.py links them).
            shutil.copy(os.path.join(a.out, ptx),
                        os.path.join(a.out, qname + ".ptx"))
            cases.append((qname, qname + ".ptx", arrays,
                          [dict(quantize, bench=True)], None))
    # The tensor-core GEMM (Q4_0 split): both tilings, partial tiles of
    # tokens (17, 100) and of rows (288: the last block's last warps idle),
    # K = 14336 (an 8B model's down projection) and N = 14336 (its gate/up)
    # at 256 of the other dimension, 4096 x 4096; the 8B shapes at 16 and 512
    # tokens for --bench (a call's carry cannot hold their float64
    # references).
    for t in (16, 17, 64, 100, 512):
        cases.append(mma_case(kc, a.out, 256, 256, t))
    cases.append(mma_case(kc, a.out, 288, 256, 100))
    cases.append(mma_case(kc, a.out, 256, 14336, 17))
    cases.append(mma_case(kc, a.out, 14336, 256, 17))
    cases.append(mma_case(kc, a.out, 4096, 4096, 16))
    cases.append(mma_case(kc, a.out, 4096, 4096, 64))
    for t in (17, 100):
        cases.append(mma_case(kc, a.out, 288, 512, t, fmt="q8_0_split"))
    for n, k in ((4096, 4096), (14336, 4096), (4096, 14336)):
        for t in (16, 512):
            cases.append(mma_bench(kc, a.out, n, k, t))
        # The split-K tiling at 512 tokens too: which is faster there.
        cases.append(mma_bench(kc, a.out, n, k, 512, tiling=16))
    for t in (16, 512):
        cases.append(mma_bench(kc, a.out, 14336, 4096, t, fmt="q8_0_split"))
    # SmolLM2's decode attention at position 130, and the issue's target
    # shape (32 heads, 8 KV heads, head_dim 128, 4096 positions).
    cases.append(attention_bench(kc, a.out, 130, 9, 3, 64, 4096))
    cases.append(attention_bench(kc, a.out, 4095, 32, 8, 128, 4096))
    cases.append(norm_case(kc, a.out, 3, 576, 1e-5))
    cases.append(norm_case(kc, a.out, 2, 4096, 1e-5))
    cases.append(norm_case(kc, a.out, 2, 100, 1e-6))
    cases.append(norm_case(kc, a.out, 3, 384, 1e-12, layer=True))
    cases.append(norm_case(kc, a.out, 2, 100, 1e-5, layer=True))
    # Wide rows over several warps (4096: 8, 2048: 4), a layer norm too, and
    # the decode kernels that also quantize (norm: 4096, 2048 and 640, one
    # warp; SwiGLU: 14336, 1536).
    cases.append(norm_case(kc, a.out, 3, 2048, 1e-5, layer=True))
    for dim in (4096, 2048, 640):
        cases.append(quantizing_case(kc, a.out, "rms_norm", dim))
    for dim in (14336, 1536):
        cases.append(quantizing_case(kc, a.out, "swiglu", dim))
    cases.append(rope_case(kc, a.out, "llama", 3, 9, 64, 64, 7, 100000.0))
    cases.append(rope_case(kc, a.out, "neox", 2, 4, 128, 64, 3, 10000.0))
    for op in ("add", "mul", "swiglu", "silu", "gelu"):
        cases.append(elementwise_case(kc, a.out, op, 3, 1536))
    cases.append(embedding_case(kc, a.out, "q8_0", 1000, 576, 4))
    cases.append(embedding_case(kc, a.out, "q8_0_split", 1000, 576, 4))
    cases.append(embedding_case(kc, a.out, "q4_K", 300, 256, 3))
    cases.append(embedding_case(kc, a.out, "q6_K", 300, 512, 2))
    cases.append(attention_case(kc, a.out, 1, 37, 9, 3, 64, 128))
    cases.append(attention_case(kc, a.out, 4, 0, 8, 2, 128, 64))
    # Positions spread over all the block's warps, head_dim 128.
    cases.append(attention_case(kc, a.out, 1, 700, 8, 2, 128, 1024))
    # The split decode (flash-decoding): 1, 37 (above), 700 and 4096 visible
    # positions, GQA, the second layer of the cache, a sliding window, head_dim
    # 256 (two 16-byte pieces a lane) with a softcap.
    cases.append(attention_case(kc, a.out, 1, 0, 9, 3, 64, 128))
    cases.append(attention_case(kc, a.out, 1, 699, 8, 2, 128, 1024, layers=2))
    cases.append(attention_case(kc, a.out, 1, 4095, 4, 1, 64, 4096, layers=2))
    cases.append(attention_case(kc, a.out, 1, 699, 8, 2, 128, 1024, window=256))
    cases.append(attention_case(kc, a.out, 1, 700, 4, 1, 256, 1024, window=512,
                                softcap=50.0))
    cases.append(attention_case(kc, a.out, 3, 40, 4, 1, 256, 64, window=16,
                                softcap=50.0))
    index = []
    prefixes = tuple(p for p in a.only.split(",") if p)
    for name, ptx, arrays, launches, output in cases:
        if prefixes and not name.startswith(prefixes):
            for f in os.listdir(a.out):
                if f.startswith(name + "."):
                    os.remove(os.path.join(a.out, f))
            continue
        np.savez_compressed(os.path.join(a.out, name + ".npz"), **arrays)
        index.append({"name": name, "ptx": ptx, "data": name + ".npz",
                      "launches": launches, "output": output})
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump(index, f, indent=1)
    print(f"{len(index)} cases in {a.out}")


if __name__ == "__main__":
    main()
