#!/usr/bin/env python3
"""Writes a seed corpus of small valid .kiln artifacts for kiln-artifact-fuzzer.

The layout follows include/kiln/runtime/Artifact.h and is written here
independently of Kiln's writer (lib/Compiler/ArtifactWriter), with its own
XXH64. Each seed is one control byte (bit 0: the harness recomputes the
checksums) followed by the file. Sections are small and 64-byte aligned so
that the fuzzer's inputs stay short; one seed keeps the writer's page-aligned
weights. Usage: gen-artifact-seeds.py OUTPUT_DIR
"""
import json
import os
import struct
import sys

M64 = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F,
                      0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                      0x27D4EB2F165667C5)


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def xxh_round(acc, lane):
    return rotl((acc + lane * P2) & M64, 31) * P1 & M64


def xxh64(data, seed=0):
    """XXH64 as in xxhash_spec.md, "XXH64 algorithm description"."""
    n, p = len(data), 0
    if n >= 32:
        acc = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed,
               (seed - P1) & M64]
        while p + 32 <= n:
            for i in range(4):
                acc[i] = xxh_round(acc[i], struct.unpack_from("<Q", data, p)[0])
                p += 8
        h = (rotl(acc[0], 1) + rotl(acc[1], 7) + rotl(acc[2], 12) +
             rotl(acc[3], 18)) & M64
        for a in acc:
            h = ((h ^ xxh_round(0, a)) * P1 + P4) & M64
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while p + 8 <= n:
        lane = struct.unpack_from("<Q", data, p)[0]
        h = (rotl(h ^ xxh_round(0, lane), 27) * P1 + P4) & M64
        p += 8
    if p + 4 <= n:
        lane = struct.unpack_from("<I", data, p)[0]
        h = (rotl(h ^ (lane * P1 & M64), 23) * P2 + P3) & M64
        p += 4
    while p < n:
        h = rotl(h ^ (data[p] * P5 & M64), 11) * P1 & M64
        p += 1
    h ^= h >> 33
    h = h * P2 & M64
    h ^= h >> 29
    h = h * P3 & M64
    h ^= h >> 32
    return h


KIND = {"manifest": 1, "vocab": 2, "host": 3, "ptx": 4, "cubin": 5,
        "weights": 6}
HEADER, ENTRY = 128, 80


def artifact(sections, min_features=0, gpu_archs=b""):
    """sections: list of (name, kind, bytes, alignment)."""
    table_off = HEADER
    pos = table_off + ENTRY * len(sections)
    placed = []
    for name, kind, data, align in sections:
        pos = (pos + align - 1) // align * align
        placed.append((name, kind, data, align, pos))
        pos += len(data)
    size = pos
    out = bytearray(size)
    table = bytearray()
    for name, kind, data, align, off in placed:
        out[off:off + len(data)] = data
        table += struct.pack("<32sIIQQQQQ", name.encode(), KIND[kind], 0, off,
                             len(data), align, xxh64(data), 0)
    out[table_off:table_off + len(table)] = table
    header = struct.pack("<8sIIQIIQQQQ56s", b"KILNART\0", 1, HEADER, 0,
                         len(sections), ENTRY, table_off, size, min_features,
                         xxh64(bytes(table)), gpu_archs)
    header += struct.pack("<Q", xxh64(header))
    out[:HEADER] = header
    return bytes(out)


def manifest(hosts, sampling=True, **model):
    m = {
        "format": 1,
        "model": dict(arch="llama", name="seed", n_layers=1, n_embd=8,
                      n_heads=1, n_kv_heads=1, head_dim=8, n_vocab=4,
                      n_ctx=64, **model),
        "entry": {"symbol": "_mlir_ciface_forward", "max_tokens": 4,
                  "scratch_bytes": 1024, "kv_cache_bytes": 256},
        "host": [{"section": s, "cpu_features": f} for s, f in hosts],
        "weights": {"section": "weights"},
        "tokenizer": {"section": "vocab"},
    }
    if sampling:
        m["sampling"] = {"temperature": 0.8, "top_k": 40, "top_p": 0.95,
                         "min_p": 0.05, "repeat_penalty": 1.1}
    return json.dumps(m, separators=(",", ":")).encode()


VOCAB = json.dumps({"model": "llama", "tokens": ["<unk>", "<s>", "</s>", "a"],
                    "token_types": [2, 3, 3, 1], "bos_id": 1, "eos_id": 2,
                    "unk_id": 0}).encode()
ELF = b"\x7fELF\x02\x01\x01" + bytes(9)


def seeds():
    v3 = ("host.x86-64-v3", ["avx2", "fma", "f16c"])
    v4 = ("host.x86-64-v4", ["avx512f", "avx512bw", "avx512vl", "avx512dq"])
    yield "two-variants", artifact([
        ("manifest", "manifest", manifest([v4, v3]), 64),
        ("vocab", "vocab", VOCAB, 64),
        ("host.x86-64-v4", "host", ELF + b"v4", 64),
        ("host.x86-64-v3", "host", ELF + b"v3", 64),
        ("weights", "weights", bytes(range(64)), 64)], min_features=0b111)
    yield "one-variant-no-sampling", artifact([
        ("manifest", "manifest", manifest([v3], sampling=False), 8),
        ("vocab", "vocab", VOCAB, 8),
        ("host.x86-64-v3", "host", ELF, 16),
        ("weights", "weights", b"", 64)])
    yield "page-aligned-weights", artifact([
        ("manifest", "manifest", manifest([v3]), 64),
        ("vocab", "vocab", VOCAB, 64),
        ("host.x86-64-v3", "host", ELF, 64),
        ("ptx", "ptx", b".version 8.0\n", 64),
        ("weights", "weights", bytes(32), 4096)], gpu_archs=b"sm_90")
    yield "no-manifest", artifact([("vocab", "vocab", VOCAB, 64)])
    yield "empty", artifact([])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        for control in (0, 1):
            with open(os.path.join(out, "%s-%d.seed" % (name, control)),
                      "wb") as f:
                f.write(bytes([control]) + data)


if __name__ == "__main__":
    main()
