"""Tiny random-weight GGUF models, one per architecture Kiln imports, for
agreement tests against llama.cpp (no real files of these are packaged).

Each case is a 2-layer model (hidden 64, vocabulary of about 400) written
with the `gguf` package the way llama.cpp's converter writes that family:

  qwen2    q/k/v biases, NeoX rope, GPT-2 byte-level BPE with the qwen2
           pre-tokenizer
  qwen3    per-head RMS norms on q and k, head_dim 32 with 4 heads
           (q width 128 != hidden 64), NeoX rope
  mistral  as llama.cpp's converter writes Mistral 7B: architecture llama,
           grouped-query attention 4:1, SentencePiece vocabulary
  phi3     fused attn_qkv and gate/up (ffn_up of 2 * ff rows), NeoX rope,
           SentencePiece vocabulary
  llama3   Llama 3.1 rope scaling: the rope_freqs tensor (factor 8, low 1,
           high 4, original context 64, as convert_hf_to_gguf.py computes
           it), llama-bpe pre-tokenizer
  yarn     qwen2 with rope.scaling.type yarn, factor 4, original context 64

Weights are Q8_0 (so both engines take their int8 activation paths), norms
F32. Usage as a module: write_case(name, path); CASES lists the names.
"""

import math

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

HIDDEN, FF, LAYERS, CONTEXT = 64, 128, 2, 256

CASES = {
    "qwen2": dict(arch="qwen2", heads=4, kv_heads=2, vocab="bpe", pre="qwen2", biases=True),
    "qwen3": dict(arch="qwen3", heads=4, kv_heads=2, head_dim=32, vocab="bpe", pre="qwen2", qk_norm=True),
    "mistral": dict(arch="llama", heads=4, kv_heads=1, vocab="spm"),
    "phi3": dict(arch="phi3", heads=4, kv_heads=4, vocab="spm", fused=True,
                 specials=("<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>")),
    "llama3": dict(arch="llama", heads=4, kv_heads=2, vocab="bpe", pre="llama-bpe", rope_freqs=True),
    "yarn": dict(arch="qwen2", heads=2, kv_heads=2, vocab="bpe", pre="qwen2", biases=True, yarn=True),
}

CORPUS = (
    "The quick brown fox jumps over the lazy dog. Hello world! "
    "It's a test: numbers 12345 and 3.14, café naïve, 日本語 text. "
    "def f(x):\n    return x * 2\n"
    "the the the and and of of to to in in is is that that it it"
)


def byte_unicode():
    """GPT-2's bytes_to_unicode: every byte as a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bpe_vocab(n_merges=120):
    """Byte-level BPE: the 256 byte tokens, merges learned on CORPUS's words
    (split at spaces, a space starting each word as GPT-2's do), specials."""
    table = byte_unicode()
    words = {}
    for i, w in enumerate(CORPUS.replace("\n", " \n ").split(" ")):
        w = (" " if i else "") + w
        key = tuple(table[b] for b in w.encode())
        if key:
            words[key] = words.get(key, 0) + 1
    tokens = [table[b] for b in range(256)]
    merges = []
    for _ in range(n_merges):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append("%s %s" % best)
        if best[0] + best[1] not in tokens:  # two merge paths may meet
            tokens.append(best[0] + best[1])
        merged = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        words = merged
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [1] * len(tokens) + [3] * len(specials)
    return tokens + specials, types, merges


def spm_vocab(specials=()):
    """SentencePiece: <unk> <s> </s>, the 256 byte-fallback tokens, then
    CORPUS's characters and words (with ▁ for a space), scored so longer
    pieces merge first, then `specials` (control tokens)."""
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    scores = [0.0, 0.0, 0.0] + [0.0] * 256
    text = CORPUS.replace(" ", "\u2581")
    pieces = sorted(set(text) - {"\n"})
    for w in CORPUS.split():
        for piece in ("\u2581" + w, w):
            if len(piece) > 1 and piece not in pieces:
                pieces.append(piece)
    # Every merge step of a word must be a piece: add the prefixes.
    for w in list(pieces):
        for n in range(2, len(w)):
            if w[:n] not in pieces:
                pieces.append(w[:n])
    for p in pieces:
        tokens.append(p)
        types.append(1)
        scores.append(-100.0 + len(p))
    for p in specials:
        tokens.append(p)
        types.append(3)
        scores.append(0.0)
    return tokens, types, scores


def llama3_rope_freqs(head_dim, base, factor=8.0, low=1.0, high=4.0, original=64):
    """convert_hf_to_gguf.py LlamaModel.generate_extra_tensors: the divisor
    of each frequency (rope_freqs)."""
    freqs = 1.0 / base ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wavelen, high_wavelen = original / low, original / high
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (original / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_case(name, path, seed=0):
    c = CASES[name]
    rng = np.random.default_rng(seed + sum(map(ord, name)))
    arch, heads, kv_heads = c["arch"], c["heads"], c["kv_heads"]
    hd = c.get("head_dim", HIDDEN // heads)
    q_width, kv_width = heads * hd, kv_heads * hd
    base = 10000.0
    w = gguf.GGUFWriter(path, arch)
    # Not "phi3": llama.cpp gives the special tokens of models so named an
    # rstrip attribute (llama-vocab.cpp), which Kiln does not model.
    w.add_name("tiny " + name.replace("phi3", "phi 3"))
    w.add_block_count(LAYERS)
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FF)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    if "head_dim" in c:
        w.add_key_length(hd)
        w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(base)
    if c.get("yarn"):
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(4.0)
        w.add_rope_scaling_orig_ctx_len(64)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)

    def padded(tokens, types, *rest):
        """Unused tokens up to a multiple of 64 (Kiln's CPU kernels take
        rows in multiples of 16)."""
        n = -len(tokens) % 64
        return (tokens + ["<unused%d>" % i for i in range(n)], types + [5] * n,
                *(r + [0.0] * n for r in rest))

    if c["vocab"] == "bpe":
        tokens, types, merges = bpe_vocab()
        tokens, types = padded(tokens, types)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(c["pre"])
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        eos = tokens.index("<|endoftext|>")
        w.add_bos_token_id(eos)
        w.add_eos_token_id(eos)
        w.add_add_bos_token(c["pre"] == "llama-bpe")
    else:
        tokens, types, scores = padded(*spm_vocab(c.get("specials", ())))
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_scores(scores)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
    vocab = len(tokens)

    def matrix(rows, cols, scale=1.0):
        return (rng.standard_normal((rows, cols)) * scale / math.sqrt(cols)).astype(np.float32)

    def add(name, data):
        if data.ndim == 2:
            w.add_tensor(name, gguf.quants.quantize(data, QT.Q8_0), raw_dtype=QT.Q8_0)
        else:
            w.add_tensor(name, data.astype(np.float32))

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    add("token_embd.weight", rng.standard_normal((vocab, HIDDEN)).astype(np.float32))
    add("output_norm.weight", norm(HIDDEN))
    # A sharp head, so greedy steps are decided rather than near-ties.
    add("output.weight", matrix(vocab, HIDDEN, 4.0))
    if c.get("rope_freqs"):
        add("rope_freqs.weight", llama3_rope_freqs(hd, base))
    for l in range(LAYERS):
        p = "blk.%d." % l
        add(p + "attn_norm.weight", norm(HIDDEN))
        if c.get("fused"):
            add(p + "attn_qkv.weight", matrix(q_width + 2 * kv_width, HIDDEN, 2.0))
        else:
            add(p + "attn_q.weight", matrix(q_width, HIDDEN, 2.0))
            add(p + "attn_k.weight", matrix(kv_width, HIDDEN, 2.0))
            add(p + "attn_v.weight", matrix(kv_width, HIDDEN))
        if c.get("biases"):
            add(p + "attn_q.bias", 0.5 * rng.standard_normal(q_width).astype(np.float32))
            add(p + "attn_k.bias", 0.5 * rng.standard_normal(kv_width).astype(np.float32))
            add(p + "attn_v.bias", 0.5 * rng.standard_normal(kv_width).astype(np.float32))
        if c.get("qk_norm"):
            add(p + "attn_q_norm.weight", norm(hd))
            add(p + "attn_k_norm.weight", norm(hd))
        add(p + "attn_output.weight", matrix(HIDDEN, q_width))
        add(p + "ffn_norm.weight", norm(HIDDEN))
        if c.get("fused"):
            add(p + "ffn_up.weight", matrix(2 * FF, HIDDEN))
        else:
            add(p + "ffn_gate.weight", matrix(FF, HIDDEN))
            add(p + "ffn_up.weight", matrix(FF, HIDDEN))
        add(p + "ffn_down.weight", matrix(HIDDEN, FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    import sys
    write_case(sys.argv[1], sys.argv[2])
