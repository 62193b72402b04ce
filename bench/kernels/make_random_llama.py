#!/usr/bin/env python3
"""A Llama-architecture GGUF with random weights, for speed only (its text
is noise): Llama-3-8B's shapes by default (32 layers, d 4096, ffn 14336,
32 query / 8 KV heads, vocab 128256). Linear weights, the token embedding
and the output layer as valid ggml blocks (random codes, f16 scales in a
sane range); norms F32 ones. A SentencePiece-style vocabulary of placeholder
pieces, enough for llama.cpp and Kiln to load it. For Q4_K_M, write Q8_0
and requantize it with llama.cpp (bench/run does). With --period R every
tensor's rows repeat after R rows: a step reads the same bytes at the same
addresses, but the file compresses to a few MB, small enough to carry to a
GPU machine that takes little per transfer (bench/gpu/big-model).

  make_random_llama.py OUT.gguf [--type q4_0|q8_0] [--layers N] [--dim D]
                       [--ffn F] [--heads H] [--kv-heads K] [--vocab V]
                       [--period R]
"""

import argparse

import gguf
import numpy as np

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("out")
ap.add_argument("--type", default="q4_0", choices=["q4_0", "q8_0"])
ap.add_argument("--layers", type=int, default=32)
ap.add_argument("--dim", type=int, default=4096)
ap.add_argument("--ffn", type=int, default=14336)
ap.add_argument("--heads", type=int, default=32)
ap.add_argument("--kv-heads", type=int, default=8)
ap.add_argument("--vocab", type=int, default=128256)
ap.add_argument("--period", type=int, default=0, help="rows repeat after this many (0: all random)")
args = ap.parse_args()
rng = np.random.default_rng(1)
qtype = gguf.GGMLQuantizationType.Q4_0 if args.type == "q4_0" else gguf.GGMLQuantizationType.Q8_0
code_bytes = 16 if args.type == "q4_0" else 32


def blocks(rows, k):
    """rows x k weights as ggml blocks of 32 values: f16 scale, then codes."""
    if 0 < args.period < rows:
        return np.tile(blocks(args.period, k), (-(-rows // args.period), 1))[:rows]
    n = rows * k // 32
    scales = (rng.random(n, dtype=np.float32) * 2e-3 + 1e-3).astype("<f2").view(np.uint8).reshape(n, 2)
    codes = rng.integers(0, 256, size=(n, code_bytes), dtype=np.uint8)
    return np.concatenate([scales, codes], axis=1).reshape(rows, -1)


head_dim = args.dim // args.heads
w = gguf.GGUFWriter(args.out, "llama")
w.add_name("random-llama")
w.add_context_length(8192)
w.add_embedding_length(args.dim)
w.add_block_count(args.layers)
w.add_feed_forward_length(args.ffn)
w.add_head_count(args.heads)
w.add_head_count_kv(args.kv_heads)
w.add_rope_dimension_count(head_dim)
w.add_rope_freq_base(500000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_vocab_size(args.vocab)
w.add_file_type(2 if args.type == "q4_0" else 7)
w.add_tokenizer_model("llama")
w.add_tokenizer_pre("default")
pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(256)]
pieces += [("\u2581w%d" % i).encode() for i in range(args.vocab - len(pieces))]
w.add_token_list(pieces)
w.add_token_scores([0.0] * args.vocab)
w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (args.vocab - 259))
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_add_bos_token(True)


def linear(name, rows, k):
    w.add_tensor(name, blocks(rows, k), raw_dtype=qtype)


linear("token_embd.weight", args.vocab, args.dim)
for i in range(args.layers):
    p = "blk.%d." % i
    w.add_tensor(p + "attn_norm.weight", np.ones(args.dim, np.float32))
    linear(p + "attn_q.weight", args.dim, args.dim)
    linear(p + "attn_k.weight", args.kv_heads * head_dim, args.dim)
    linear(p + "attn_v.weight", args.kv_heads * head_dim, args.dim)
    linear(p + "attn_output.weight", args.dim, args.dim)
    w.add_tensor(p + "ffn_norm.weight", np.ones(args.dim, np.float32))
    linear(p + "ffn_gate.weight", args.ffn, args.dim)
    linear(p + "ffn_up.weight", args.ffn, args.dim)
    linear(p + "ffn_down.weight", args.dim, args.ffn)
w.add_tensor("output_norm.weight", np.ones(args.dim, np.float32))
linear("output.weight", args.vocab, args.dim)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file(progress=False)
w.close()
