"""A float64 numpy forward pass of a Llama-family GGUF model: the independent
reference for Kiln's numerics on real weights (weights dequantized by the
gguf package, everything else in float64).

Usage as a module: ReferenceLlama(path).logits(tokens) -> [len(tokens), vocab];
logits(tokens, inputs={}) also fills inputs[weight name] with the [T, K]
input each linear layer multiplies (calibration statistics are checked
against them).
"""

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class ReferenceLlama:
    def __init__(self, path):
        r = GGUFReader(path)
        f = {k: v for k, v in r.fields.items()}
        arch = f["general.architecture"].contents()
        g = lambda k, d=None: f[arch + "." + k].contents() if arch + "." + k in f else d
        self.layers = g("block_count")
        self.heads = g("attention.head_count")
        self.kv_heads = g("attention.head_count_kv", self.heads)
        self.dim = g("embedding_length")
        self.head_dim = self.dim // self.heads
        self.eps = g("attention.layer_norm_rms_epsilon")
        self.base = g("rope.freq_base", 10000.0)
        self.neox = arch == "qwen2"
        self.w = {}
        for t in r.tensors:
            shape = [int(d) for d in reversed(t.shape.tolist())]
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x, heads, positions):
        hd = self.head_dim
        x = x.reshape(len(positions), heads, hd).copy()
        i = np.arange(hd // 2)
        theta = positions[:, None] * self.base ** (-2.0 * i / hd)
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        if self.neox:
            a, b = x[..., : hd // 2].copy(), x[..., hd // 2:].copy()
            x[..., : hd // 2], x[..., hd // 2:] = a * c - b * s, a * s + b * c
        else:
            a, b = x[..., 0::2].copy(), x[..., 1::2].copy()
            x[..., 0::2], x[..., 1::2] = a * c - b * s, a * s + b * c
        return x.reshape(len(positions), heads * hd)

    def logits(self, tokens, inputs=None):
        w, hd, T = self.w, self.head_dim, len(tokens)
        seen = inputs if inputs is not None else {}
        pos = np.arange(T, dtype=np.float64)
        x = w["token_embd.weight"][tokens]
        group = self.heads // self.kv_heads
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for l in range(self.layers):
            p = "blk.%d." % l
            h = self.rms(x, w[p + "attn_norm.weight"])
            for n in ("attn_q", "attn_k", "attn_v"):
                seen[p + n + ".weight"] = h
            q = self.rope(h @ w[p + "attn_q.weight"].T, self.heads, pos)
            k = self.rope(h @ w[p + "attn_k.weight"].T, self.kv_heads, pos)
            v = h @ w[p + "attn_v.weight"].T
            out = np.zeros((T, self.heads * hd))
            for hh in range(self.heads):
                g = hh // group
                qs, ks, vs = q[:, hh * hd:(hh + 1) * hd], k[:, g * hd:(g + 1) * hd], v[:, g * hd:(g + 1) * hd]
                s = qs @ ks.T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                out[:, hh * hd:(hh + 1) * hd] = (s / s.sum(-1, keepdims=True)) @ vs
            seen[p + "attn_output.weight"] = out
            x = x + out @ w[p + "attn_output.weight"].T
            h = self.rms(x, w[p + "ffn_norm.weight"])
            seen[p + "ffn_gate.weight"] = seen[p + "ffn_up.weight"] = h
            gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
            act = gate / (1 + np.exp(-gate)) * up
            seen[p + "ffn_down.weight"] = act
            x = x + act @ w[p + "ffn_down.weight"].T
        x = self.rms(x, w["output_norm.weight"])
        head_name = "output.weight" if "output.weight" in w else "token_embd.weight"
        seen[head_name] = x
        return x @ w[head_name].T
