#!/usr/bin/env python3
"""Kiln's pre-tokenizers against llama.cpp's, one `tokenizer.ggml.pre` value
at a time, on a byte-level BPE vocabulary made here.

The vocabulary's merges are learned on whole lines of tokenizer_vs_llama_cpp's
texts (accents, CJK, digit runs, punctuation, contractions, whitespace runs,
long words), so they cross every place a pre-tokenizer may split: where two
pre-tokenizers split a text differently, the ids differ. For each `pre` the
GGUF (vocabulary only) goes to llama.cpp (vocab_only) and its vocabulary JSON
to kiln-tokenize-driver, and tokenizer_vs_llama_cpp.check_model compares ids
for every text with and without special tokens, decode, and round trips.
A `pre` llama.cpp does not know must be refused by both.

usage: pre_tokenizers_vs_llama_cpp.py DRIVER WORKDIR
"""
import json
import os
import subprocess
import sys

import gguf

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "Model", "Inputs"))
from tokenizer_vs_llama_cpp import TEXTS, check_model, vocab_json  # noqa: E402
from tiny_archs import byte_unicode  # noqa: E402

# One name per regex set Kiln implements, then the names sharing a set.
PRES = [
    "default", "gpt-2", "smollm", "llama-bpe", "qwen2", "falcon", "bloom", "viking",
    "gpt-4o", "tekken", "deepseek-v3", "deepseek-llm", "deepseek-coder",
    "starcoder", "command-r", "exaone", "minerva-7b", "mpt", "olmo", "jais", "dbrx",
    "smaug-bpe", "stablelm2", "megrez", "deepseek-r1-qwen", "falcon3", "pixtral",
    "gpt3-finnish", "poro-chat", "llama4", "chatglm-bpe", "trillion", "hunyuan",
]
N_MERGES = 600
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def learn_merges():
    """Byte-level BPE merges over whole lines (no pre-tokenization), most
    frequent pair first."""
    table = byte_unicode()
    texts = TEXTS
    for special in SPECIALS:  # a merge must not rebuild a special token
        texts = [t.replace(special, "") for t in texts]
    lines = [tuple(table[b] for b in t.encode()) for t in texts if t]
    tokens = [table[b] for b in range(256)]
    merges = []
    for _ in range(N_MERGES):
        pairs = {}
        for w in lines:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append("%s %s" % best)
        if best[0] + best[1] not in tokens:  # two merge paths may meet
            tokens.append(best[0] + best[1])
        merged = []
        for w in lines:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged.append(tuple(out))
        lines = merged
    return tokens, merges


def write_vocab(path, pre, tokens, merges):
    specials = SPECIALS
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens + specials)
    w.add_token_types([1] * len(tokens) + [3] * len(specials))
    w.add_token_merges(merges)
    w.add_bos_token_id(len(tokens))
    w.add_eos_token_id(len(tokens))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()


def refused_by_both(driver, workdir, tokens, merges):
    """An unknown `pre`: llama.cpp refuses the vocabulary, and so must Kiln."""
    path = os.path.join(workdir, "unknown.gguf")
    write_vocab(path, "no-such-pre", tokens, merges)
    vocab_path = os.path.join(workdir, "unknown.vocab.json")
    with open(vocab_path, "w") as f:
        json.dump(vocab_json(path), f)
    proc = subprocess.run([driver, vocab_path], input=b"", capture_output=True)
    kiln_error = proc.stderr.decode().strip()
    code = ("import llama_cpp, sys\n"
            "try:\n    llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)\n"
            "except Exception:\n    sys.exit(3)\n")
    peer = subprocess.run([sys.executable, "-c", code, path], capture_output=True)
    ok = proc.returncode != 0 and peer.returncode != 0 and "no-such-pre" in kiln_error
    print("unknown pre: kiln %s (%s), llama.cpp %s %s" % (
        "refuses" if proc.returncode else "accepts", kiln_error.splitlines()[-1] if kiln_error else "",
        "refuses" if peer.returncode else "accepts", "ok" if ok else "FAIL"))
    return 0 if ok else 1


def main():
    driver, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    tokens, merges = learn_merges()
    failures = 0
    for pre in PRES:
        path = os.path.join(workdir, pre + ".gguf")
        write_vocab(path, pre, tokens, merges)
        failures += check_model("pre=" + pre, path, driver, workdir, cleans_spaces=True)
    failures += refused_by_both(driver, workdir, tokens, merges)
    if failures:
        sys.exit(f"{failures} differences from llama.cpp")
    print("PASS")


if __name__ == "__main__":
    main()
