#!/usr/bin/env python3
"""Writes a tiny Llama checkpoint directory (model.safetensors + config.json),
valid or broken in one named way.

    make_safetensors.py CASE DIR

The safetensors file is written by hand (8-byte length, JSON header, data) so
that broken headers are as easy to write as valid ones.
"""
import json
import os
import struct
import sys

import numpy as np

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 8,
    "max_position_embeddings": 32, "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0, "tie_word_embeddings": True, "hidden_act": "silu",
}


def tensors():
    t = {"model.embed_tokens.weight": (8, 8), "model.norm.weight": (8,)}
    p = "model.layers.0."
    t.update({
        p + "input_layernorm.weight": (8,),
        p + "self_attn.q_proj.weight": (8, 8),
        p + "self_attn.k_proj.weight": (4, 8),
        p + "self_attn.v_proj.weight": (4, 8),
        p + "self_attn.o_proj.weight": (8, 8),
        p + "post_attention_layernorm.weight": (8,),
        p + "mlp.gate_proj.weight": (16, 8),
        p + "mlp.up_proj.weight": (16, 8),
        p + "mlp.down_proj.weight": (8, 16),
    })
    return t


def safetensors_bytes(shapes, dtype="BF16", mutate_header=None, length=None):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [len(data), len(data) + n]}
        data += bytes(n)
    if mutate_header:
        mutate_header(header)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def main():
    case, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    config, shapes = dict(CONFIG), tensors()
    weights = None
    if case == "valid":
        pass
    elif case == "kv-heads-zero":
        config["num_key_value_heads"] = 0
    elif case == "heads-not-dividing":
        config["num_attention_heads"] = 3
    elif case == "k-wrong-shape":
        shapes["model.layers.0.self_attn.k_proj.weight"] = (8, 8)
    elif case == "unknown-dtype":
        weights = safetensors_bytes(shapes, mutate_header=lambda h: h[
            "model.norm.weight"].__setitem__("dtype", "Q4"))
    elif case == "overlap":
        weights = safetensors_bytes(shapes, mutate_header=lambda h: h[
            "model.norm.weight"].__setitem__("data_offsets", [0, 16]))
    elif case == "header-length-max":
        weights = safetensors_bytes(shapes, length=2**64 - 1)
    elif case == "header-not-json":
        weights = struct.pack("<Q", 9) + b"{not json"
    elif case == "pickle-in-safetensors":
        weights = b"PK\x03\x04" + bytes(64)
    elif case == "no-config":
        config = None
    else:
        sys.exit("unknown case " + case)
    if weights is None:
        weights = safetensors_bytes(shapes)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(weights)
    if config is not None:
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(config, f)


if __name__ == "__main__":
    main()
