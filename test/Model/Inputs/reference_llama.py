"""A float64 numpy forward pass of a Llama-family GGUF model: the independent
reference for Kiln's numerics on real weights (weights dequantized by the
gguf package, everything else in float64). Llama, Mistral, Qwen2 (q/k/v
biases), Qwen3 (per-head q/k norms), Phi-3 (fused qkv and gate/up), with
linear, Llama 3 (rope_freqs) and YaRN rope scaling as llama.cpp applies them.

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
        self.head_dim = g("attention.key_length", self.dim // self.heads)
        self.eps = g("attention.layer_norm_rms_epsilon")
        self.base = g("rope.freq_base", 10000.0)
        self.neox = arch in ("qwen2", "qwen3", "phi3")
        self.w = {}
        for t in r.tensors:
            shape = [int(d) for d in reversed(t.shape.tolist())]
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
        self.split_fused()
        self.rope_scaling(g)

    def split_fused(self):
        """Phi-3's attn_qkv (q, k, v rows) and ffn_up (gate rows, then up)."""
        q_width, kv_width = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for l in range(self.layers):
            p = "blk.%d." % l
            qkv = self.w.pop(p + "attn_qkv.weight", None)
            if qkv is not None:
                self.w[p + "attn_q.weight"] = qkv[:q_width]
                self.w[p + "attn_k.weight"] = qkv[q_width:q_width + kv_width]
                self.w[p + "attn_v.weight"] = qkv[q_width + kv_width:]
            if p + "ffn_gate.weight" not in self.w:
                ff = self.w[p + "ffn_up.weight"].shape[0] // 2
                up = self.w.pop(p + "ffn_up.weight")
                self.w[p + "ffn_gate.weight"], self.w[p + "ffn_up.weight"] = up[:ff], up[ff:]

    def rope_scaling(self, g):
        """Each frequency's angle multiplier and the rotation's magnitude:
        ggml's rope_yarn with llama.cpp's parameters (beta fast 32, slow 1,
        magnitude 1 + 0.1 ln(factor)); rope_freqs divides each frequency."""
        half = self.head_dim // 2
        kind = g("rope.scaling.type", "linear")
        factor = g("rope.scaling.factor", 1.0) if kind != "none" else 1.0
        scale = 1.0 / factor
        self.magnitude = g("rope.scaling.attn_factor", 1.0)
        self.multiplier = np.full(half, scale)
        if kind == "yarn" and factor != 1.0:
            original = g("rope.scaling.original_context_length", g("context_length"))
            d = self.head_dim

            def corr_dim(rotations):
                return d * np.log(original / (rotations * 2 * np.pi)) / (2 * np.log(self.base))
            low = max(0.0, np.floor(corr_dim(32.0)))
            high = min(d - 1.0, np.ceil(corr_dim(1.0)))
            ramp = 1 - np.clip((np.arange(half) - low) / max(0.001, high - low), 0, 1)
            self.multiplier = scale * (1 - ramp) + ramp
            if factor > 1:
                self.magnitude *= 1 + 0.1 * np.log(factor)
        if "rope_freqs.weight" in self.w:
            self.multiplier = self.multiplier / self.w["rope_freqs.weight"]

    def rms(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def head_rms(self, x, w):
        """RMS norm of each head_dim slice (Qwen3's q/k norms)."""
        heads = x.reshape(x.shape[0], -1, self.head_dim)
        return self.rms(heads, w).reshape(x.shape)

    def rope(self, x, heads, positions):
        hd = self.head_dim
        x = x.reshape(len(positions), heads, hd).copy()
        i = np.arange(hd // 2)
        theta = positions[:, None] * self.base ** (-2.0 * i / hd) * self.multiplier
        c = self.magnitude * np.cos(theta)[:, None, :]
        s = self.magnitude * np.sin(theta)[:, None, :]
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
            q, k, v = (h @ w[p + n + ".weight"].T + w.get(p + n + ".bias", 0.0)
                       for n in ("attn_q", "attn_k", "attn_v"))
            if p + "attn_q_norm.weight" in w:
                q = self.head_rms(q, w[p + "attn_q_norm.weight"])
                k = self.head_rms(k, w[p + "attn_k_norm.weight"])
            q = self.rope(q, self.heads, pos)
            k = self.rope(k, self.kv_heads, pos)
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
