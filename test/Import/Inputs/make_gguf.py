#!/usr/bin/env python3
"""Writes a tiny Llama-family GGUF model, valid or broken in one named way.

    make_gguf.py CASE OUT.gguf

"valid" is a well-formed model (1 layer, embedding 8, 2 heads, 1 KV head,
feed-forward 16, 8 tokens, F32 weights); every other case changes exactly one
thing so that the test can check the one error it causes. gguf.GGUFWriter
writes whatever it is given, so inconsistent files are easy to make.
"""
import sys

import gguf.quants
import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

S, U32, I32, F32, STR, ARR, BOOL = (GGUFValueType.STRING, GGUFValueType.UINT32,
                                    GGUFValueType.INT32, GGUFValueType.FLOAT32,
                                    GGUFValueType.STRING, GGUFValueType.ARRAY,
                                    GGUFValueType.BOOL)
F64 = GGUFValueType.FLOAT64

D, HEADS, KV_HEADS, FF, LAYERS, CTX = 8, 2, 1, 16, 1, 32
TOKENS = ["<s>", "</s>", "a", "b", "c", "ab", "abc", "\u0120"]


def base(D=D, HEADS=HEADS, KV_HEADS=KV_HEADS, FF=FF, LAYERS=LAYERS,
         EXTRA_TOKENS=()):
    """Metadata as {key: (value, type, sub_type)} and tensors as
    {name: (numpy shape [N, K], raw ggml type or None, numpy array or None)}."""
    hd = D // HEADS
    meta = {
        "general.architecture": ("llama", S, None),
        "general.name": ("hostile-test", S, None),
        "llama.block_count": (LAYERS, U32, None),
        "llama.context_length": (CTX, U32, None),
        "llama.embedding_length": (D, U32, None),
        "llama.feed_forward_length": (FF, U32, None),
        "llama.attention.head_count": (HEADS, U32, None),
        "llama.attention.head_count_kv": (KV_HEADS, U32, None),
        "llama.attention.layer_norm_rms_epsilon": (1e-5, F32, None),
        "llama.rope.freq_base": (10000.0, F32, None),
        "tokenizer.ggml.model": ("gpt2", S, None),
        "tokenizer.ggml.pre": ("gpt2", S, None),
        "tokenizer.ggml.tokens": (TOKENS + list(EXTRA_TOKENS), ARR, STR),
        "tokenizer.ggml.token_type": ([3, 3] + [1] * (len(TOKENS) - 2 + len(EXTRA_TOKENS)),
                                      ARR, I32),
        "tokenizer.ggml.merges": (["a b", "ab c"], ARR, STR),
        "tokenizer.ggml.bos_token_id": (0, U32, None),
        "tokenizer.ggml.eos_token_id": (1, U32, None),
    }
    V = len(TOKENS) + len(EXTRA_TOKENS)
    tensors = {"token_embd.weight": ([V, D], None, None)}
    for i in range(LAYERS):
        p = f"blk.{i}."
        tensors.update({
            p + "attn_norm.weight": ([D], None, None),
            p + "attn_q.weight": ([HEADS * hd, D], None, None),
            p + "attn_k.weight": ([KV_HEADS * hd, D], None, None),
            p + "attn_v.weight": ([KV_HEADS * hd, D], None, None),
            p + "attn_output.weight": ([D, HEADS * hd], None, None),
            p + "ffn_norm.weight": ([D], None, None),
            p + "ffn_gate.weight": ([FF, D], None, None),
            p + "ffn_up.weight": ([FF, D], None, None),
            p + "ffn_down.weight": ([D, FF], None, None),
        })
    tensors["output_norm.weight"] = ([D], None, None)
    tensors["output.weight"] = ([V, D], None, None)
    return meta, tensors


def set_(key, value, vtype, sub=None):
    return lambda m, t: m.__setitem__(key, (value, vtype, sub))


def drop(key):
    return lambda m, t: m.pop(key)


def reshape(name, shape):
    return lambda m, t: t.__setitem__(name, (shape, None, None))


def q4_0_row_of_8(m, t):
    # 8 values per row cannot be whole 32-value Q4_0 blocks; 2 rows of
    # 18 bytes is what the writer is told to store.
    t["blk.0.ffn_norm.weight"] = ([2, 8], GGMLQuantizationType.Q4_0,
                                  np.zeros(36, dtype=np.int8))


def quantized(m, t):
    """Matrices in the block formats the int8 kernels repack: Q4_0 layers
    and a Q8_0 token embedding that is also the output head (tied)."""
    t.pop("output.weight")
    rng = np.random.default_rng(1)
    for name, (shape, raw, data) in list(t.items()):
        if len(shape) != 2:
            continue
        kind = (GGMLQuantizationType.Q8_0 if name == "token_embd.weight"
                else GGMLQuantizationType.Q4_0)
        values = rng.standard_normal(shape).astype(np.float32) * 0.1
        blocks = gguf.quants.quantize(values, kind)
        # The writer takes a quantized tensor's shape in bytes.
        t[name] = (list(blocks.shape), kind, blocks)


def quiet_block(m, t):
    """Layer 1 adds almost nothing to the residual stream: its attention
    output and down projections 1000 times smaller than the rest."""
    rng = np.random.default_rng(2)
    for name in ("blk.1.attn_output.weight", "blk.1.ffn_down.weight"):
        shape = t[name][0]
        t[name] = (shape, None, rng.standard_normal(shape).astype(np.float32) * 1e-4)


def gemma3(then=None):
    """The valid model as a Gemma 3 (`gemma3.*` keys, q/k norms, post-norms,
    tied output head), then `then` applied."""
    def make(m, t):
        for key in [k for k in m if k.startswith("llama.")]:
            m["gemma3." + key[len("llama."):]] = m.pop(key)
        m["general.architecture"] = ("gemma3", S, None)
        m["gemma3.attention.sliding_window"] = (4, U32, None)
        hd = D // HEADS
        for i in range(LAYERS):
            p = f"blk.{i}."
            for name, n in [("attn_q_norm", hd), ("attn_k_norm", hd),
                            ("post_attention_norm", D), ("post_ffw_norm", D)]:
                t[p + name + ".weight"] = ([n], None, None)
        t.pop("output.weight")
        if then:
            then(m, t)
    return make


# Valid models of other sizes: {case: keyword arguments of base()}.
SIZES = {
    # 2 layers of one 64-wide KV head: 1 KiB of KV cache per position, so
    # --ctx 8388608 asks for an 8 GiB cache. The CPU lowering needs feature
    # dimensions (the vocabulary included) that are multiples of 16.
    "wide": dict(D=64, HEADS=1, KV_HEADS=1, FF=64, LAYERS=2,
                 EXTRA_TOKENS=list("defghijk")),
    "wide-quantized": dict(D=64, HEADS=1, KV_HEADS=1, FF=64, LAYERS=2,
                           EXTRA_TOKENS=list("defghijk")),
    "wide-quiet-block": dict(D=64, HEADS=1, KV_HEADS=1, FF=64, LAYERS=2,
                             EXTRA_TOKENS=list("defghijk")),
}

CASES = {
    "valid": lambda m, t: None,
    "wide": lambda m, t: None,
    "wide-quantized": quantized,
    "wide-quiet-block": quiet_block,
    "no-arch": drop("general.architecture"),
    "arch-not-string": set_("general.architecture", 7, U32),
    "unknown-arch": set_("general.architecture", "mamba", S),
    "no-block-count": drop("llama.block_count"),
    "block-count-string": set_("llama.block_count", "one", S),
    "block-count-zero": set_("llama.block_count", 0, U32),
    "no-embedding": drop("llama.embedding_length"),
    "embedding-float": set_("llama.embedding_length", 8.0, F32),
    "no-epsilon": drop("llama.attention.layer_norm_rms_epsilon"),
    "epsilon-string": set_("llama.attention.layer_norm_rms_epsilon", "tiny", S),
    "epsilon-negative": set_("llama.attention.layer_norm_rms_epsilon", -1.0, F32),
    # Positive as f64, 0 as the f32 the graph holds (found by the import fuzzer).
    "epsilon-underflow": set_("llama.attention.layer_norm_rms_epsilon", 1e-60, F64),
    "no-tokens": drop("tokenizer.ggml.tokens"),
    "tokens-int": set_("tokenizer.ggml.tokens", [1, 2, 3], ARR, I32),
    "no-tokenizer-model": drop("tokenizer.ggml.model"),
    "heads-not-dividing-embedding": set_("llama.attention.head_count", 3, U32),
    "kv-heads-zero": set_("llama.attention.head_count_kv", 0, U32),
    "kv-heads-not-dividing": set_("llama.attention.head_count_kv", 3, U32),
    "kv-heads-more-than-heads": set_("llama.attention.head_count_kv", 4, U32),
    "q-wrong-shape": reshape("blk.0.attn_q.weight", [D, 4]),
    "embd-wrong-vocab": reshape("token_embd.weight", [7, D]),
    "ffn-contradicts-metadata": set_("llama.feed_forward_length", 32, U32),
    "missing-tensor": lambda m, t: t.pop("blk.0.ffn_up.weight"),
    "bos-too-large": set_("tokenizer.ggml.bos_token_id", 8, U32),
    "eos-huge": set_("tokenizer.ggml.eos_token_id", 2**32 - 1, U32),
    "token-types-short": set_("tokenizer.ggml.token_type", [1] * 7, ARR, I32),
    "merge-no-space": set_("tokenizer.ggml.merges", ["a b", "abc"], ARR, STR),
    "merge-empty-second": set_("tokenizer.ggml.merges", ["a b", "ab "], ARR, STR),
    "merge-unknown-token": set_("tokenizer.ggml.merges", ["a b", "x y"], ARR, STR),
    "merge-three-parts": set_("tokenizer.ggml.merges", ["a b c"], ARR, STR),
    "unknown-pre": set_("tokenizer.ggml.pre", "no-such-pre", S),
    "token-bad-utf8": set_("tokenizer.ggml.tokens",
                           [t.encode() for t in TOKENS[:5]] + [b"a\xff", b"abc", b"\xc0\x80"],
                           ARR, STR),
    "merge-bad-utf8": set_("tokenizer.ggml.merges", ["a b", b"\xe2\x82 c"], ARR, STR),
    "q4-row-not-block": q4_0_row_of_8,
    "i32-weight": lambda m, t: t.__setitem__(
        "blk.0.attn_norm.weight", ([8], None, np.zeros(8, dtype=np.int32))),
    # 4096 layers of 65536-wide heads: a KV cache no machine can hold. The
    # importer must refuse before looking for the missing tensors.
    "rope-scaling-llama3": set_("llama.rope.scaling.type", "llama3", S),
    "rope-freqs-wrong-size": lambda m, t: t.__setitem__(
        "rope_freqs.weight", ([3], None, np.ones(3, dtype=np.float32))),
    "rope-freqs-zero": lambda m, t: t.__setitem__(
        "rope_freqs.weight", ([2], None, np.zeros(2, dtype=np.float32))),
    # Positive finite, but 1 / 2.2e-41 (subnormal) overflows f32 (found by the
    # import fuzzer).
    "rope-freqs-subnormal": lambda m, t: t.__setitem__(
        "rope_freqs.weight", ([2], None, np.array([1.0, 2.2e-41], dtype=np.float32))),
    "longrope": lambda m, t: t.__setitem__(
        "rope_factors_long.weight", ([2], None, np.ones(2, dtype=np.float32))),
    "gemma3-valid": gemma3(),
    "gemma3-softcap": gemma3(set_("gemma3.final_logit_softcapping", 30.0, F32)),
    "gemma3-swa-pattern-zero": gemma3(set_("gemma3.attention.sliding_window_pattern", 0, U32)),
    "gemma3-no-k-norm": gemma3(lambda m, t: t.pop("blk.0.attn_k_norm.weight")),
    "huge-kv-cache": lambda m, t: (m.__setitem__("llama.block_count", (4096, U32, None)),
                                   m.__setitem__("llama.attention.key_length", (65536, U32, None)),
                                   m.__setitem__("llama.context_length", (4096, U32, None))),
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        sys.exit("usage: make_gguf.py {%s} OUT.gguf" % "|".join(CASES))
    meta, tensors = base(**SIZES.get(sys.argv[1], {}))
    CASES[sys.argv[1]](meta, tensors)
    w = GGUFWriter(sys.argv[2], meta.get("general.architecture", ("llama",))[0]
                   if isinstance(meta.get("general.architecture", ("llama",))[0], str)
                   else "llama", use_temp_file=False)
    # GGUFWriter adds general.architecture itself; drop it so that the
    # metadata above is exactly what the file holds.
    w.kv_data[0].pop("general.architecture", None)
    for key, (value, vtype, sub) in meta.items():
        w.add_key_value(key, value, vtype, sub_type=sub)
    rng = np.random.default_rng(0)
    for name, (shape, raw, data) in tensors.items():
        if data is None:
            data = rng.standard_normal(shape).astype(np.float32) * 0.1
        w.add_tensor(name, data, raw_shape=shape if raw is not None else None,
                     raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
