#!/usr/bin/env python3
"""A tiny random Llama checkpoint in the Hugging Face layout against the same
weights as a GGUF, as llama.cpp's convert_hf_to_gguf.py would write them.

    hf_llama_vs_gguf.py write DIR      writes DIR/{f32,bf16,sharded,qwen3}/
                                       (each config.json, tokenizer.json and
                                       safetensors weights) and DIR/*.gguf
    hf_llama_vs_gguf.py compare LIB HF.kiln GGUF.kiln
                                       tokenization, last-position logits and
                                       16 greedy tokens of both artifacts

The safetensors files are written by hand (8-byte header length, JSON
header, data), as test/Import/Inputs/make_safetensors.py does. The GGUF
holds the same values in F32 (BF16 and F16 values are exact in F32), with
Q and K rows permuted for llama.cpp's adjacent-pair RoPE exactly as
convert_hf_to_gguf.py's LlamaModel.permute does; Kiln imports the Hugging
Face weights unpermuted and rotates halves (NeoX style), so agreement checks
both the name mapping and that choice. The qwen3 checkpoint (model_type
qwen3: per-head q/k norms, head_dim 32 with 4 heads of a 64-wide model) goes
to a `qwen3` GGUF unpermuted, as the converter writes Qwen models.
"""
import json
import os
import struct
import sys

import numpy as np

D, HEADS, KV_HEADS, FF, LAYERS, CTX = 64, 4, 2, 96, 2, 128
HD = D // HEADS
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>"]
WORDS = ["hello", "world", "the", "kiln", "fire"]
VOCAB_SIZE = 320  # more than the tokenizer's tokens: [PADn] fill the rest
PROMPT = "hello world, the kiln fire"


def bytes_to_unicode():
    """GPT-2's byte -> printable codepoint table (openai/gpt-2 encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def vocabulary():
    """Byte tokens, merges spelling WORDS (and their space-prefixed forms),
    then the special tokens: (tokens by id, merges)."""
    b2u = bytes_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    merges = []
    for word in WORDS + ["Ġ" + w for w in WORDS]:
        word = word.replace("Ġ", b2u[ord(" ")])
        piece = word[0]
        for c in word[1:]:
            if piece + c not in tokens:
                merges.append(piece + " " + c)
                tokens.append(piece + c)
            piece += c
    return tokens + SPECIAL, merges


def tokenizer_json(tokens, merges):
    n = len(tokens) - len(SPECIAL)
    return {
        "version": "1.0",
        "added_tokens": [{"id": n + i, "content": t, "special": True}
                         for i, t in enumerate(SPECIAL)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                          "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": SPECIAL[0], "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}]},
        "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(tokens[:n])},
                  "merges": [m.split(" ") for m in merges]},
    }


def weights(rng, hd=HD, qk_norm=False):
    w = {"model.embed_tokens.weight": rng.standard_normal((VOCAB_SIZE, D)),
         "model.norm.weight": 1 + 0.1 * rng.standard_normal(D),
         "lm_head.weight": rng.standard_normal((VOCAB_SIZE, D)) / np.sqrt(D)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w.update({
            p + "input_layernorm.weight": 1 + 0.1 * rng.standard_normal(D),
            p + "self_attn.q_proj.weight": rng.standard_normal((HEADS * hd, D)) / np.sqrt(D),
            p + "self_attn.k_proj.weight": rng.standard_normal((KV_HEADS * hd, D)) / np.sqrt(D),
            p + "self_attn.v_proj.weight": rng.standard_normal((KV_HEADS * hd, D)) / np.sqrt(D),
            p + "self_attn.o_proj.weight": rng.standard_normal((D, HEADS * hd)) / np.sqrt(D),
            p + "post_attention_layernorm.weight": 1 + 0.1 * rng.standard_normal(D),
            p + "mlp.gate_proj.weight": rng.standard_normal((FF, D)) / np.sqrt(D),
            p + "mlp.up_proj.weight": rng.standard_normal((FF, D)) / np.sqrt(D),
            p + "mlp.down_proj.weight": rng.standard_normal((D, FF)) / np.sqrt(FF),
        })
        if qk_norm:
            w[p + "self_attn.q_norm.weight"] = 1 + 0.1 * rng.standard_normal(hd)
            w[p + "self_attn.k_norm.weight"] = 1 + 0.1 * rng.standard_normal(hd)
    return {k: v.astype(np.float32) for k, v in w.items()}


def to_bf16_bits(a):
    """Round-to-nearest-even f32 -> bf16, as torch does."""
    bits = a.astype(np.float32).view(np.uint32)
    bits = bits + 0x7FFF + ((bits >> 16) & 1)
    return (bits >> 16).astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, dtype):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        raw = {"F32": lambda: a.astype("<f4").tobytes(),
               "F16": lambda: a.astype("<f2").tobytes(),
               "BF16": lambda: to_bf16_bits(a).astype("<u2").tobytes()}[dtype]()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def stored(w, dtype):
    """The values a checkpoint of `dtype` holds, in f32."""
    if dtype == "BF16":
        return {k: from_bf16_bits(to_bf16_bits(v)) for k, v in w.items()}
    if dtype == "F16":
        return {k: v.astype(np.float16).astype(np.float32) for k, v in w.items()}
    return w


def permute(w, heads):
    """convert_hf_to_gguf.py LlamaModel.permute."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, w, tokens, merges, arch="llama", hd=HD):
    from gguf import GGUFWriter, TokenType
    g = GGUFWriter(path, arch)
    g.add_name("tiny-hf-llama")
    g.add_block_count(LAYERS)
    g.add_context_length(CTX)
    g.add_embedding_length(D)
    g.add_feed_forward_length(FF)
    g.add_head_count(HEADS)
    g.add_head_count_kv(KV_HEADS)
    if hd != HD:
        g.add_key_length(hd)
        g.add_value_length(hd)
    g.add_layer_norm_rms_eps(1e-5)
    g.add_rope_freq_base(10000.0)
    g.add_tokenizer_model("gpt2")
    g.add_tokenizer_pre("gpt2")
    padded = tokens + ["[PAD%d]" % i for i in range(len(tokens), VOCAB_SIZE)]
    types = [TokenType.NORMAL] * (len(tokens) - len(SPECIAL)) + [TokenType.CONTROL] * len(SPECIAL) + \
        [TokenType.UNUSED] * (VOCAB_SIZE - len(tokens))
    g.add_token_list(padded)
    g.add_token_types(types)
    g.add_token_merges(merges)
    g.add_bos_token_id(tokens.index(SPECIAL[0]))
    g.add_eos_token_id(tokens.index(SPECIAL[1]))
    g.add_add_bos_token(True)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
                 "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
                 "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
    for name, a in w.items():
        if name in names:
            g.add_tensor(names[name], a)
            continue
        _, _, layer, rest = name.split(".", 3)
        part = rest[: -len(".weight")]
        if arch == "llama" and part == "self_attn.q_proj":
            a = permute(a, HEADS)
        elif arch == "llama" and part == "self_attn.k_proj":
            a = permute(a, KV_HEADS)
        g.add_tensor("blk.%s.%s.weight" % (layer, per_layer[part]), np.ascontiguousarray(a))
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()


def write(out):
    tokens, merges = vocabulary()
    w = weights(np.random.default_rng(18))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
              "intermediate_size": FF, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB_SIZE, "max_position_embeddings": CTX,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
              "hidden_act": "silu", "bos_token_id": tokens.index(SPECIAL[0]),
              "eos_token_id": tokens.index(SPECIAL[1])}
    for kind, dtype in (("f32", "F32"), ("bf16", "BF16"), ("sharded", "F16")):
        d = os.path.join(out, kind)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(tokenizer_json(tokens, merges), f)
        if kind == "sharded":
            names = list(w)
            shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
                      "model-00002-of-00002.safetensors": names[len(names) // 2:]}
            for file, part in shards.items():
                write_safetensors(os.path.join(d, file), {n: w[n] for n in part}, dtype)
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {}, "weight_map": {n: file for file, part in shards.items()
                                                          for n in part}}, f)
        else:
            write_safetensors(os.path.join(d, "model.safetensors"), w, dtype)
        write_gguf(os.path.join(out, kind + ".gguf"), stored(w, dtype), tokens, merges)
    hd = 2 * HD
    w = weights(np.random.default_rng(3), hd=hd, qk_norm=True)
    d = os.path.join(out, "qwen3")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(config, architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=hd), f)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(tokens, merges), f)
    write_safetensors(os.path.join(d, "model.safetensors"), w, "F32")
    write_gguf(os.path.join(out, "qwen3.gguf"), w, tokens, merges, arch="qwen3", hd=hd)


def compare(lib, hf_artifact, gguf_artifact):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Model", "Inputs"))
    from compare_llama_cpp import Kiln
    hf, gg = Kiln(lib, hf_artifact), Kiln(lib, gguf_artifact)
    ok = True
    ids_hf, ids_gg = hf.tokenize(PROMPT, True), gg.tokenize(PROMPT, True)
    same = ids_hf == ids_gg
    print("tokenize %r: %s %s" % (PROMPT, ids_hf, "ok" if same else "FAIL gguf gives %s" % ids_gg))
    ok &= same
    a, b = hf.eval(ids_gg), gg.eval(ids_gg)
    err = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    # Both run f32 activations on the same values; only the order of the
    # RoPE arithmetic differs.
    tol = 1e-5
    print("logits rel_err=%.3e tol=%.0e %s" % (err, tol, "ok" if err <= tol else "FAIL"))
    ok &= err <= tol
    ta, tb = [], []
    for _ in range(16):
        ta.append(int(np.argmax(a)))
        tb.append(int(np.argmax(b)))
        a, b = hf.eval([ta[-1]]), gg.eval([tb[-1]])
    print("greedy 16 tokens: %s %s" % (ta, "ok" if ta == tb else "FAIL gguf gives %s" % tb))
    ok &= ta == tb
    if not ok:
        print("FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(compare(*sys.argv[2:5]))
