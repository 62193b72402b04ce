"""kiln.compile_mlir: kiln functions lowered, called on numpy arrays and
compared with float64 numpy references by relative error."""

import numpy as np
import pytest
from gguf import GGMLQuantizationType, quants

import kiln

RNG = np.random.default_rng(7)


def rel_error(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def external(offset, data):
    return '#kiln.external<"weights.bin", offset = %d, size = %d>' % (offset, len(data))


LINEAR = """
func.func @linear(%x: tensor<?x{k}xf32>) -> tensor<?x{n}xf32> attributes {{kiln.max_tokens = 8}} {{
  %w = kiln.weight {src} -> !kiln.weight<{n}x{k}x{enc}>
  %y = kiln.linear %x, %w : tensor<?x{k}xf32>, !kiln.weight<{n}x{k}x{enc}> -> tensor<?x{n}xf32>
  return %y : tensor<?x{n}xf32>
}}
"""

Q4_0 = "#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>"


@pytest.mark.parametrize("fmt", ["f32", "q4_0"])
@pytest.mark.parametrize("tokens,threads", [(1, 1), (5, 2)])
def test_linear_weights_in_file(tmp_path, fmt, tokens, threads):
    n, k = 96, 256
    w = (RNG.standard_normal((n, k)) * 0.5).astype(np.float32)
    if fmt == "f32":
        raw, deq, enc = w.tobytes(), w.astype(np.float64), "f32"
    else:
        blocks = quants.quantize(w, GGMLQuantizationType.Q4_0)
        raw = blocks.tobytes()
        deq = quants.dequantize(blocks, GGMLQuantizationType.Q4_0).astype(np.float64)
        enc = Q4_0
    path = tmp_path / "weights.bin"
    path.write_bytes(raw)
    fn = kiln.compile_mlir(LINEAR.format(k=k, n=n, src=external(0, raw), enc=enc),
                           pipeline="activations=f32", weights=path, threads=threads)
    x = RNG.standard_normal((tokens, k)).astype(np.float32)
    y = fn(x)
    assert y.shape == (tokens, n) and y.dtype == np.float32
    assert rel_error(y, x.astype(np.float64) @ deq.T) < 1e-5


def test_rms_norm():
    dim, eps = 96, 1e-5
    gamma = RNG.standard_normal(dim).astype(np.float32)
    text = (
        "func.func @norm(%x: tensor<?x96xf32>) -> tensor<?x96xf32> attributes {kiln.max_tokens = 8} {\n"
        "  %g = kiln.weight " + external(0, gamma.tobytes()) + " -> !kiln.weight<96xf32>\n"
        "  %y = kiln.rms_norm %x, %g {epsilon = 1.0e-05 : f32} : tensor<?x96xf32>, "
        "!kiln.weight<96xf32> -> tensor<?x96xf32>\n"
        "  return %y : tensor<?x96xf32>\n}\n")
    fn = kiln.compile_mlir(text, weights=gamma.tobytes(), threads=2)
    x = (RNG.standard_normal((7, dim)) * 3 + 1).astype(np.float32)
    xd = x.astype(np.float64)
    want = xd / np.sqrt((xd ** 2).mean(-1, keepdims=True) + eps) * gamma
    assert rel_error(fn(x), want) < 1e-5


SILU = """
func.func @silu(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
"""


def test_silu_zero_copy_input_and_signature():
    fn = kiln.compile_mlir(SILU, threads=2)
    assert [a[:2] for a in fn.signature] == [("x", "tensor"), ("result0", "result")]
    assert fn.signature[0][3] == (None, 64)
    x = RNG.standard_normal((3, 64)).astype(np.float32)
    x.flags.writeable = False  # read-only inputs are fine: nothing is copied
    xd = x.astype(np.float64)
    assert rel_error(fn(x), xd / (1 + np.exp(-xd))) < 1e-5
    # A non-contiguous view is copied (not an error).
    big = RNG.standard_normal((3, 128)).astype(np.float32)
    view = big[:, ::2]
    vd = view.astype(np.float64)
    assert rel_error(fn(view), vd / (1 + np.exp(-vd))) < 1e-5


def test_dims_from_names_an_input():
    text = """
func.func @two(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.swiglu %a, %b : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
"""
    fn = kiln.compile_mlir(text, dims_from="b")
    a = RNG.standard_normal((4, 64)).astype(np.float32)
    b = RNG.standard_normal((4, 64)).astype(np.float32)
    ad = a.astype(np.float64)
    assert rel_error(fn(a, b), ad / (1 + np.exp(-ad)) * b) < 1e-5
    with pytest.raises(kiln.KilnError, match="names no input"):
        kiln.compile_mlir(text, dims_from="c")


@pytest.mark.parametrize("tokens,threads", [(1, 1), (6, 2)])
def test_q4_0_linear_int8_packed_at_compile_time(tokens, threads):
    # Weights given at compile time are packed as kiln-compile packs them
    # (kiln-pack-weights: the 16-row interleaved layout of the int8 kernels)
    # and kept by the module: calls take none, and raw file bytes passed to
    # a call are refused rather than read in the wrong layout.
    n, k = 64, 256
    w = (RNG.standard_normal((n, k)) * 0.5).astype(np.float32)
    blocks = quants.quantize(w, GGMLQuantizationType.Q4_0)
    raw = blocks.tobytes()
    deq = quants.dequantize(blocks, GGMLQuantizationType.Q4_0).astype(np.float64)
    text = LINEAR.format(k=k, n=n, src=external(0, raw), enc=Q4_0)
    fn = kiln.compile_mlir(text, pipeline="activations=int8", weights=raw, threads=threads)
    x = RNG.standard_normal((tokens, k)).astype(np.float32)
    want = x.astype(np.float64) @ deq.T
    # int8 activations (ggml's q8_1 rounding): about 1% relative error.
    assert rel_error(fn(x), want) < 2e-2
    with pytest.raises(kiln.KilnError, match="holds its weights"):
        fn(x, weights=raw)
    # The same module without weights at compile time reads the file's own
    # layout on each call; both agree with numpy.
    unpacked = kiln.compile_mlir(text, pipeline="activations=int8", threads=threads)
    assert rel_error(unpacked(x, weights=raw), want) < 2e-2
