"""A float64 numpy forward pass of a Gemma 3 GGUF model: the independent
reference for Kiln's numerics on real weights (weights dequantized by the
gguf package, everything else in float64).

Gemma 3 as llama.cpp reads its GGUF: embeddings times sqrt(dim); per layer
an RMS-normed attention block whose queries and keys are RMS-normed per head
before NeoX rope, a post-attention RMS norm, a GeGLU (tanh GELU) feed-forward
block with its own post norm; five sliding-window layers (rope base 10000,
window attention.sliding_window) for each global one; the output head is the
embedding table. The converter already added Gemma's +1 to the norm weights.

Usage as a module: ReferenceGemma3(path).logits(tokens) -> [len(tokens), vocab]
"""

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class ReferenceGemma3:
    SWA_PATTERN = 6
    SWA_BASE = 10000.0

    def __init__(self, path):
        r = GGUFReader(path)
        f = {k: v for k, v in r.fields.items()}
        assert f["general.architecture"].contents() == "gemma3"
        g = lambda k: f["gemma3." + k].contents()
        self.layers = g("block_count")
        self.heads = g("attention.head_count")
        self.kv_heads = g("attention.head_count_kv")
        self.dim = g("embedding_length")
        self.head_dim = g("attention.key_length")
        self.eps = g("attention.layer_norm_rms_epsilon")
        self.base = g("rope.freq_base")
        self.window = g("attention.sliding_window")
        self.w = {}
        for t in r.tensors:
            shape = [int(d) for d in reversed(t.shape.tolist())]
            data = dequantize(t.data, t.tensor_type).reshape(shape)
            # The 262144-row table stays f32 (it is exact in f32); the output
            # head below widens it chunk by chunk.
            self.w[t.name] = data if t.name == "token_embd.weight" else data.astype(np.float64)

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def rope(self, x, heads, positions, base):
        hd = self.head_dim
        x = x.reshape(len(positions), heads, hd).copy()
        theta = positions[:, None] * base ** (-2.0 * np.arange(hd // 2) / hd)
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        a, b = x[..., : hd // 2].copy(), x[..., hd // 2:].copy()
        x[..., : hd // 2], x[..., hd // 2:] = a * c - b * s, a * s + b * c
        return x.reshape(len(positions), heads * hd)

    def head_norm(self, x, heads, w):
        return self.rms(x.reshape(len(x), heads, self.head_dim), w).reshape(len(x), -1)

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    def logits(self, tokens):
        w, hd, T = self.w, self.head_dim, len(tokens)
        pos = np.arange(T, dtype=np.float64)
        x = w["token_embd.weight"][tokens].astype(np.float64) * np.sqrt(self.dim)
        group = self.heads // self.kv_heads
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        causal = np.where(j <= i, 0.0, -np.inf)
        windowed = np.where((j <= i) & (i - j < self.window), 0.0, -np.inf)
        for l in range(self.layers):
            p = "blk.%d." % l
            sliding = (l + 1) % self.SWA_PATTERN != 0
            base = self.SWA_BASE if sliding else self.base
            mask = windowed if sliding else causal
            h = self.rms(x, w[p + "attn_norm.weight"])
            q = self.head_norm(h @ w[p + "attn_q.weight"].T, self.heads, w[p + "attn_q_norm.weight"])
            k = self.head_norm(h @ w[p + "attn_k.weight"].T, self.kv_heads, w[p + "attn_k_norm.weight"])
            q, k = self.rope(q, self.heads, pos, base), self.rope(k, self.kv_heads, pos, base)
            v = h @ w[p + "attn_v.weight"].T
            out = np.zeros((T, self.heads * hd))
            for hh in range(self.heads):
                g = hh // group
                qs, ks, vs = q[:, hh * hd:(hh + 1) * hd], k[:, g * hd:(g + 1) * hd], v[:, g * hd:(g + 1) * hd]
                s = qs @ ks.T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(-1, keepdims=True))
                out[:, hh * hd:(hh + 1) * hd] = (s / s.sum(-1, keepdims=True)) @ vs
            x = x + self.rms(out @ w[p + "attn_output.weight"].T, w[p + "post_attention_norm.weight"])
            h = self.rms(x, w[p + "ffn_norm.weight"])
            gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
            ffn = (self.gelu(gate) * up) @ w[p + "ffn_down.weight"].T
            x = x + self.rms(ffn, w[p + "post_ffw_norm.weight"])
        x = self.rms(x, w["output_norm.weight"])
        table = w["token_embd.weight"]
        chunk = 32768
        return np.concatenate([x @ table[c:c + chunk].astype(np.float64).T
                               for c in range(0, len(table), chunk)], axis=1)
