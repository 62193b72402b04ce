"""Every error path ends in kiln.KilnError with the C API's message."""

import numpy as np
import pytest

import kiln
from test_compile_mlir import SILU


def test_compile_missing_file(tmp_path):
    with pytest.raises(kiln.KilnError, match="nope.gguf"):
        kiln.compile(str(tmp_path / "nope.gguf"), progress=False)


def test_load_missing_file(tmp_path):
    with pytest.raises(kiln.KilnError, match="no such file"):
        kiln.load(tmp_path / "nope.kiln")


def test_load_on_a_device_it_cannot_run_on(smollm2):
    with pytest.raises(kiln.KilnError, match=r"the artifact has no CUDA code \(targets: cpu\)"):
        kiln.load(smollm2.path, device="cuda")
    with pytest.raises(kiln.KilnError, match="device must be cpu, cuda or cuda:N, got 'tpu'"):
        kiln.load(smollm2.path, device="tpu")


def test_load_not_an_artifact(tmp_path):
    bad = tmp_path / "bad.kiln"
    bad.write_bytes(b"not an artifact" * 10)
    with pytest.raises(kiln.KilnError):
        kiln.load(bad)


@pytest.mark.parametrize("options,message", [
    ({"colour": "blue"}, "unknown compile option 'colour'"),
    ({"activations": "int9"}, "activations='int9' is invalid"),
    ({"target": "tpu"}, "target='tpu' is invalid"),
    ({"ctx": -1}, "ctx='-1' is invalid"),
    ({"max_tokens": 0}, "max_tokens='0' is invalid"),
    ({"quantize": "bits=9"}, r"quantize: bits=9 is out of range \(2..8\)"),
    ({"quantize": "bits=3,format=gguf"}, "format=gguf has no ggml block type"),
    ({"prune": "rate=1.5"}, r"prune: rate=1.5 is out of range \[0, 1\)"),
    ({"prune": "pattern=nm,n=3,m=2"}, "prune: 3:2 sparsity needs 0 < n < m"),
])
def test_compile_bad_option(smollm2_gguf, options, message):
    with pytest.raises(kiln.KilnError, match=message):
        kiln.compile(smollm2_gguf, progress=False, **options)


def test_compile_mlir_unknown_pipeline_option():
    with pytest.raises(kiln.KilnError, match="unknown pipeline option 'fast'"):
        kiln.compile_mlir(SILU, pipeline="fast=1")
    with pytest.raises(kiln.KilnError, match="activations=int9 is invalid"):
        kiln.compile_mlir(SILU, pipeline="activations=int9")
    with pytest.raises(kiln.KilnError,
                       match=r"unstructured=sparse is invalid \(unstructured=auto\|bitmap\|dense\)"):
        kiln.compile_mlir(SILU, pipeline="unstructured=sparse")


def test_compile_mlir_bad_mlir():
    with pytest.raises(kiln.KilnError, match="input.mlir:1:1"):
        kiln.compile_mlir("this is not mlir")
    with pytest.raises(kiln.KilnError, match="input.mlir:3:"):
        kiln.compile_mlir(SILU.replace("tensor<?x64xf32>\n  return", "tensor<?x64xi32>\n  return"))


def test_compile_mlir_no_kiln_function():
    with pytest.raises(kiln.KilnError, match="no function that uses kiln ops"):
        kiln.compile_mlir("func.func @f(%a: i32) -> i32 { return %a : i32 }")


def test_call_wrong_dtype_shape_and_count():
    fn = kiln.compile_mlir(SILU)
    with pytest.raises(kiln.KilnError, match="must be f32, got f64"):
        fn(np.zeros((2, 64)))
    with pytest.raises(kiln.KilnError, match="must have size 64 in dimension 1, got 32"):
        fn(np.zeros((2, 32), dtype=np.float32))
    with pytest.raises(kiln.KilnError, match="must have rank 2, got 1"):
        fn(np.zeros(64, dtype=np.float32))
    with pytest.raises(kiln.KilnError, match=r"token count 9 is outside \[1, 8\]"):
        fn(np.zeros((9, 64), dtype=np.float32))
    with pytest.raises(kiln.KilnError, match="takes 1 arguments"):
        fn()
    with pytest.raises(kiln.KilnError, match="must be a numpy array"):
        fn([1.0] * 64)
    with pytest.raises(kiln.KilnError, match="thread count"):
        fn(np.zeros((2, 64), dtype=np.float32), threads=0)


def test_call_weights_too_small(tmp_path):
    from test_compile_mlir import LINEAR, external
    raw = np.zeros(64 * 64, dtype=np.float32).tobytes()
    fn = kiln.compile_mlir(LINEAR.format(k=64, n=64, src=external(0, raw), enc="f32"),
                           pipeline="activations=f32")
    with pytest.raises(kiln.KilnError, match="the weights buffer has 0 bytes"):
        fn(np.zeros((1, 64), dtype=np.float32))
    with pytest.raises(kiln.KilnError, match="nope.bin"):
        fn(np.zeros((1, 64), dtype=np.float32), weights=tmp_path / "nope.bin")


def test_model_errors(smollm2):
    with pytest.raises(kiln.KilnError, match="empty"):
        smollm2.logits([])
    with pytest.raises(kiln.KilnError, match="token id"):
        smollm2.detokenize([smollm2.n_vocab])
    with pytest.raises(kiln.KilnError):
        smollm2.generate("hi", max_tokens=10**6, temperature=0)
    with pytest.raises(kiln.KilnError):
        smollm2.logits([1, 2, 3], rows=4)


def test_stream_callback_error_propagates(smollm2):
    gen = smollm2.generate("Hello", max_tokens=4, temperature=0, stream=True)
    assert isinstance(next(gen), str)
    gen.close()  # stopping early is clean
