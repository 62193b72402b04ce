#!/usr/bin/env python3
"""Writes a seed corpus for kiln-tokenizer-fuzzer: small vocabularies of both
kinds (byte-level BPE with each pre-tokenizer family, SentencePiece-style with
byte fallback) and chat templates, each paired with texts that exercise
special tokens, digits, whitespace runs, contractions and non-ASCII text.
Seed layout (see TokenizerFuzzer.cpp): control byte, vocabulary JSON, NUL,
text. Usage: gen-tokenizer-seeds.py OUTPUT_DIR
"""
import json
import os
import sys


def byte_to_unicode():
    """GPT-2's printable image of each byte (as in its encoder.py)."""
    bs = (list(range(ord("!"), ord("~") + 1)) +
          list(range(ord("¡"), ord("¬") + 1)) +
          list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = byte_to_unicode()


def bpe_vocab(pre, template):
    tokens = [B2U[b] for b in range(256)]
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "1 2", "' s", "Ã ©"]
    for m in merges:
        tokens.append(m.replace(" ", ""))
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                "<|end_header_id|>"]
    types = [1] * len(tokens) + [3] * len(specials)
    tokens += specials
    return {"model": "gpt2", "pre": pre, "tokens": tokens,
            "token_types": types, "merges": merges,
            "bos_id": tokens.index("<|im_start|>"),
            "eos_id": tokens.index("<|im_end|>"),
            "eot_id": tokens.index("<|eot_id|>"), "add_bos": pre == "llama3",
            "chat_template": template}


def spm_vocab(template):
    tokens = ["<unk>", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>"]
    types = [2, 3, 3, 3, 3]
    tokens += ["<0x%02X>" % b for b in range(256)]
    types += [6] * 256
    pieces = ["▁", "a", "b", "c", "▁a", "ab", "▁ab", "é", "▁the", "t", "h",
              "e", "th", "he", "1", "2"]
    tokens += pieces
    types += [1] * len(pieces)
    tokens.append("<user>")
    types.append(4)
    return {"model": "llama", "tokens": tokens, "token_types": types,
            "scores": [0.0] * 261 + [-float(i) for i in range(len(pieces))] +
            [0.0],
            "bos_id": 1, "eos_id": 2, "unk_id": 0, "add_space_prefix": True,
            "chat_template": template}


CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + "
          "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>' }}")
LLAMA3 = "<|start_header_id|>{{ role }}<|end_header_id|>\n\n{{ content }}<|eot_id|>"
GEMMA = "<start_of_turn>user\n{{ content }}<end_of_turn>\n<start_of_turn>model\n"

TEXTS = [
    "the cat's 123456 théâtre  \t\n  end",
    "<|im_start|>user\nhi<|im_end|>\n<|eot_id|>",
    "<s>ab abc</s> <user> <start_of_turn>x<end_of_turn>",
    "I'M you'll WE'VE 3.14159 ١٢٣ 日本語 🙂\r\n",
    "",
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    vocabs = [bpe_vocab(p, t) for p, t in (("gpt2", CHATML), ("smollm", ""),
                                           ("llama3", LLAMA3),
                                           ("qwen2", CHATML), ("default", ""))]
    vocabs.append(spm_vocab(GEMMA))
    i = 0
    for v in vocabs:
        blob = json.dumps(v, ensure_ascii=False).encode()
        for t in TEXTS:
            with open(os.path.join(out, "seed-%02d" % i), "wb") as f:
                f.write(bytes([i & 3]) + blob + b"\0" + t.encode())
            i += 1


if __name__ == "__main__":
    main()
