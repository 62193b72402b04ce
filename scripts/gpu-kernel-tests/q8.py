"""One token's activations quantized as the int8 decode GEMV reads them
(QuantizedActivations in lib/Conversion/KilnToGPU/Linear.cpp), computed in
float32 exactly as the kernels do: shared by make_cases.py (references) and
run_cases.py (the exact check of a kernel's quantized output)."""
import numpy as np


def quantize_activations(x, bits=8):
    """Per 32 values (the CPU's emitQuantizeBlock, ggml's q8_1 at 8 bits):
    the codes, the scale rounded to f16, the codes' sum and scale * sum
    rounded to f16 (the last two as float64)."""
    m = np.float32(2 ** (bits - 1) - 1)
    blocks = np.asarray(x, np.float32).reshape(-1, 32)
    amax = np.abs(blocks).max(axis=1)
    with np.errstate(divide="ignore"):
        inv = np.where(amax != 0, m / amax, np.float32(0)).astype(np.float32)
    codes = np.rint(np.clip(blocks * inv[:, None], -m, m)).astype(np.int32)
    scale = (amax / m).astype(np.float32)
    sums = codes.sum(axis=1)
    return (codes, scale.astype(np.float16).astype(np.float64), sums,
            (scale * sums.astype(np.float32)).astype(np.float16).astype(np.float64))


def quantized_bytes(k):
    """Bytes of QuantizedActivations for K values: the codes, then three
    16-byte aligned arrays of one 4-byte entry per 32 values."""
    array = -(-(k // 32) * 4 // 16) * 16
    return k + 3 * array


def packed(x, bits=8):
    """The bytes a kernel writes for x: int8 codes, then f32 scales, i32
    sums and f32 scaled sums (zeros where nothing is written)."""
    k = np.asarray(x).size
    codes, scale, sums, scaled = quantize_activations(x, bits)
    out = np.zeros(quantized_bytes(k), np.uint8)
    array = (quantized_bytes(k) - k) // 3
    blocks = k // 32
    out[:k] = codes.astype(np.int8).ravel().view(np.uint8)
    out[k:k + 4 * blocks] = scale.astype(np.float32).view(np.uint8)
    out[k + array:k + array + 4 * blocks] = sums.astype(np.int32).view(np.uint8)
    out[k + 2 * array:k + 2 * array + 4 * blocks] = \
        scaled.astype(np.float32).view(np.uint8)
    return out
