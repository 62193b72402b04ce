#!/usr/bin/env python3
"""Writes a seed corpus for kiln-safetensors-fuzzer: small valid .safetensors
files (written here from the format's description: 8-byte little-endian header
length, JSON header, data section) covering every dtype, scalars, empty
tensors, `__metadata__` and header padding, and Llama-family config.json
texts. Seed layout (see SafetensorsFuzzer.cpp): control byte (0 safetensors,
1 config.json), then the bytes. Usage: gen-safetensors-seeds.py OUTPUT_DIR
"""
import json
import os
import struct
import sys

DTYPES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2,
          "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
          "F64": 8, "I64": 8, "U64": 8}


def safetensors(tensors, metadata=None, pad=0):
    header, data = {}, b""
    for name, dtype, shape in tensors:
        n = DTYPES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + n]}
        data += bytes((len(data) + i) & 0xFF for i in range(n))
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + data


def config(**overrides):
    c = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "vocab_size": 32,
         "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "tie_word_embeddings": False}
    c.update(overrides)
    return json.dumps(c).encode()


def seeds():
    yield 0, safetensors([("w.%s" % d.lower(), d, [2, 3])
                          for d in DTYPES])
    yield 0, safetensors([("model.embed_tokens.weight", "BF16", [32, 4]),
                          ("model.norm.weight", "F32", [4]),
                          ("scalar", "F16", []), ("empty", "F32", [0, 4])],
                         metadata={"format": "pt"}, pad=7)
    yield 0, safetensors([], metadata={})
    yield 0, safetensors([("a", "I64", [1, 1, 1, 1, 1, 1, 1, 2])])
    yield 1, config()
    yield 1, config(model_type="qwen2", head_dim=16, tie_word_embeddings=True)
    yield 1, config(model_type="mistral", rope_theta=1e6,
                    num_key_value_heads=4)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for i, (control, data) in enumerate(seeds()):
        with open(os.path.join(out, "seed-%02d" % i), "wb") as f:
            f.write(bytes([control]) + data)


if __name__ == "__main__":
    main()
