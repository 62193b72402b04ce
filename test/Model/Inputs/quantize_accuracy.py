"""kiln-quantize beside llama.cpp's quantizer, from the same float model.

The teacher is an F16 GGUF made from a packaged quantized model with the gguf
package (test/Inputs/make_float_gguf.py); its weights lie on the source's
4-bit grid, so formats on that grid are nearly lossless and the table says
which rows are off it.
  1. ggml formats: Kiln (kiln-compile --quantize=...,format=gguf --emit=gguf)
     and llama.cpp (llama_model_quantize, in a child process) write the same
     GGUF; every tensor's type and bytes are compared, and llama.cpp loads
     Kiln's file (its logits on a prompt are compared with those of its own).
  2. Every row is compiled by Kiln with f32 activations (so the figures are
     the weights' error alone; the W5A5 and W8A8 rows quantize activations
     too) and measured against the teacher: relative L2
     error of the last-position logits of a prompt, and perplexity of a text
     (kiln-run --perplexity, llama-perplexity's method). For the GGUF rows
     llama.cpp's own perplexity of the same file, context and chunks too.

  3. Calibrated rows (GPTQ, AWQ, mixed precision under a bits-per-weight
     budget) quantize with the statistics of the teacher's linear-layer
     inputs, collected by Kiln itself (kiln-compile --calibration-taps,
     kiln-run --collect-stats) on CALIB_TEXT, a different text; llama.cpp's
     k-quant mixes (Q4_K_M, Q3_K_M, Q2_K, without an importance matrix)
     beside them.
     Also llama.cpp's Q3_K_M and Q2_K with the token embedding (the tied
     output head too) lowered to Q4_0 (llama_model_quantize's
     token_embedding_type): the fewest bits per weight llama.cpp reaches on
     models whose rows are not a multiple of 256 (its K-quant and IQ types
     fall back to 32-blocks there), without an importance matrix.
  4. With PEER_BIN (bench/build-peer's llama-imatrix and llama-quantize):
     llama.cpp's importance matrix from llama-imatrix on the same CALIB_TEXT,
     context and chunks, and llama-quantize --imatrix at its usual types
     (Q4_K_M, IQ4_XS, Q3_K_M, IQ3_XXS, Q2_K, IQ2_XS). Their perplexity is
     llama.cpp's; Kiln's too where Kiln loads the format (not the IQ ones).
     Files already in WORKDIR (teacher, Kiln statistics, imatrix, llama-quantize outputs) are
     reused: the IQ types take minutes each on 2 cores.
With TABLE, the table is also written there as Markdown, and beside it a
plot of perplexity against bits per weight (TABLE with .svg for .md).

usage: quantize_accuracy.py SRC.gguf WORKDIR KILN_TOOLS_DIR LIBKILN_RUNTIME.so
           TEXT CTX CHUNKS ROWS [CALIB_TEXT CALIB_CHUNKS [PEER_BIN [TABLE]]]
           (ROWS: comma-separated row names, or "all")
"""

import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Inputs"))
sys.path.insert(0, HERE)
from compare_llama_cpp import Kiln, rel  # noqa: E402
from llama_cpp_peer import LlamaPeer, extra_bufts  # noqa: E402

PROMPT = "The three primary colors are red, yellow and"
# Threads of every Kiln and llama.cpp run (bench/quantize-accuracy --threads).
THREADS = os.environ.get("KILN_QA_THREADS", "2")
# llama.h llama_ftype of the ggml rows.
LLAMA_FTYPE = {"q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q6_k": 18, "q5_k_m": 17,
               "q4_k_m": 15, "q3_k_m": 12, "q2_k": 10}
# llama.cpp's mixes with no single Kiln counterpart (no byte comparison).
LLAMA_ONLY = ("q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k")
# llama-quantize --imatrix rows: llama.cpp's usual types near 4.5, 3.5 and
# 2.5 bits per weight.
IMATRIX_TYPES = ("Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "IQ4_XS", "Q3_K_M", "IQ3_XXS", "Q2_K", "IQ2_XS")
# The same with the token embedding (the tied output head too) lowered to
# Q4_0, llama-quantize --token-embedding-type q4_0: the fewest bits per
# weight llama.cpp writes for models whose rows are not 256-wide.
IMATRIX_LOW_EMBEDDING = ("Q4_0", "Q3_K_M", "Q2_K")
GGML_OPTIONS = {"q4_0": "bits=4,group=32,sym", "q4_1": "bits=4,group=32,asym",
                "q5_0": "bits=5,group=32,sym", "q5_1": "bits=5,group=32,asym",
                "q8_0": "bits=8,group=32,sym"}
# Kiln's packed rows: --quantize options (bits per weight counted below).
PACKED = {"kiln p8 g32": "bits=8,group=32", "kiln p6 g32": "bits=6,group=32",
          "kiln p5 g32": "bits=5,group=32", "kiln p2 g32": "bits=2,group=32",
          # Weights and activations both quantized (the seed's W5A5).
          "kiln w5a5 p5 g32": "bits=5,group=32", "kiln w8a8 p8 g32": "bits=8,group=32",
          "kiln p4 g32": "bits=4,group=32", "kiln p4 g128 asym": "bits=4,group=128,asym",
          "kiln p3 g32 asym": "bits=3,group=32,asym", "kiln p3 g32": "bits=3,group=32",
          "kiln p2 g32 asym": "bits=2,group=32,asym", "kiln p2 g64 asym": "bits=2,group=64,asym"}
# Calibrated rows: --quantize options, the statistics file appended.
CALIBRATED = {"kiln gptq p4 g32": "bits=4,group=32,gptq", "kiln awq p4 g32": "bits=4,group=32,awq",
              "kiln gptq p3 g32 asym": "bits=3,group=32,asym,gptq",
              "kiln awq p3 g32 asym": "bits=3,group=32,asym,awq",
              "kiln mixed 4.5": "budget=4.5,group=32",
              "kiln mixed 4.5 gptq": "budget=4.5,group=32,gptq",
              "kiln gptq p3 g32": "bits=3,group=32,gptq",
              "kiln mixed 3.5 gptq": "budget=3.5,group=32,gptq",
              "kiln gptq p2 g64 asym": "bits=2,group=64,asym,gptq",
              "kiln mixed 2.5 gptq": "budget=2.5,group=32,gptq",
              # search: each group's scale searched (weighted by the
              # input's mean squares), GPTQ's error feedback after it.
              "kiln gptq search p4 g32": "bits=4,group=32,gptq,search",
              "kiln gptq search p3 g32": "bits=3,group=32,gptq,search",
              "kiln gptq search p2 g64 asym": "bits=2,group=64,asym,gptq,search",
              "kiln p4 g32 search": "bits=4,group=32,search",
              "kiln p3 g32 search": "bits=3,group=32,search",
              "kiln mixed 4.5 gptq search": "budget=4.5,group=32,gptq,search",
              # At the bits per weight of llama.cpp's imatrix rows with a
              # Q4_0 embedding (SmolLM2's Q2_K and Q3_K_M mixes).
              "kiln mixed 4.29 gptq search": "budget=4.29,group=32,gptq,search",
              "kiln mixed 4.61 gptq search": "budget=4.61,group=32,gptq,search",
              # At llama.cpp's own imatrix mixes' bits per weight on SmolLM2
              # (Q2_K 5.13, Q4_0 5.35: its 576-wide rows fall back to
              # 32-value blocks).
              "kiln mixed 5.13 gptq search": "budget=5.13,group=32,gptq,search",
              "kiln mixed 5.35 gptq search": "budget=5.35,group=32,gptq,search",
              "kiln mixed 3.5 gptq search": "budget=3.5,group=32,gptq,search",
              "kiln mixed 2.5 gptq search": "budget=2.5,group=32,gptq,search",
              "kiln p2 g32 search": "bits=2,group=32,search",
              "kiln p2 g64 asym search": "bits=2,group=64,asym,search",
              "kiln mixed 3.5 search": "budget=3.5,group=32,search",
              "kiln mixed 2.5 search": "budget=2.5,group=32,search",
              "kiln w5a5 gptq search p5 g32": "bits=5,group=32,gptq,search"}
# Rows whose activations are quantized too (kiln-compile --activations);
# every other Kiln row runs f32 activations: the weights' error alone.
ACTIVATIONS = {"kiln w5a5 p5 g32": "int5", "kiln w8a8 p8 g32": "int8", "kiln w5a5 gptq search p5 g32": "int5"}
# llama.cpp's mixes with the token embedding (also the tied output head)
# lowered to the narrowest type its rows allow: llama_model_quantize's
# token_embedding_type, what llama-quantize --token-embedding-type sets.
# {row: (llama_ftype, ggml_type of token_embd)}; ggml.h: Q4_0 = 2.
LLAMA_LOW_EMBEDDING = {"q3_k_m embd q4_0": (12, 2), "q2_k embd q4_0": (10, 2)}


def packed_bits_per_weight(compile_, teacher, options, work):
    """Mean bits per weight of the 2-D quantized weights kiln-compile writes
    for `options` (codes, scales and zeros), read from the weight types."""
    mlir = os.path.join(work, "bpw.mlir")
    run([compile_, "-q", "--emit=mlir", "--quantize=" + options, teacher, "-o", mlir])
    scalar = {"f16": 16, "bf16": 16, "f32": 32}
    bits = params = 0
    pattern = re.compile(r"!kiln\.weight<(\d+)x(\d+)x#kiln\.quant<bits = (\d+), group = (\d+), "
                         r"scale = (\w+)(?:, zero = (\w+))?")
    with open(mlir) as f:
        for line in f:
            m = pattern.search(line) if "kiln.weight dense_resource" in line else None
            if m:
                n = int(m.group(1)) * int(m.group(2))
                group = int(m.group(4))
                bits += n * (int(m.group(3)) * group + scalar[m.group(5)] +
                             (scalar[m.group(6)] if m.group(6) else 0)) / group
                params += n
    os.remove(mlir)
    return bits / params


def collect_statistics(tools, teacher, calib_text, ctx, chunks, work):
    """The teacher's linear-layer input statistics, through Kiln itself (a
    file already in `work` reused, as the importance matrix is)."""
    artifact = os.path.join(work, "calibration.kiln")
    stats = os.path.join(work, "teacher.kstats")
    if os.path.exists(stats):
        return stats
    run([os.path.join(tools, "kiln-compile"), "-q", "--activations=f32", "--calibration-taps",
         teacher, "-o", artifact])
    run([os.path.join(tools, "kiln-run"), "-m", artifact, "--collect-stats", calib_text, "-o", stats,
         "--ctx", str(ctx), "--chunks", str(chunks), "-t", THREADS])
    os.remove(artifact)
    return stats


def llama_imatrix_files(peer_bin, teacher, calib_text, ctx, chunks, types, work, embedding=None):
    """llama-quantize --imatrix outputs of `types` (the token embedding in
    `embedding` when given), the importance matrix from llama-imatrix on the
    calibration text (files in `work` reused)."""
    imatrix = os.path.join(work, "imatrix.gguf")
    if not os.path.exists(imatrix):
        run([os.path.join(peer_bin, "llama-imatrix"), "-m", teacher, "-f", calib_text, "-c", str(ctx),
             "--chunks", str(chunks), "-t", THREADS, "-o", imatrix])
    files = {}
    for t in types:
        files[t] = os.path.join(work, "llama-%s-imat%s.gguf" % (t, "-embd-" + embedding if embedding else ""))
        if not os.path.exists(files[t]):
            extra = ["--token-embedding-type", embedding] if embedding else []
            run([os.path.join(peer_bin, "llama-quantize"), "--imatrix", imatrix] + extra +
                [teacher, files[t], t, THREADS])
    return files


def write_table(path, results, header):
    """The rows as a Markdown table, and perplexity against bits per weight
    as an SVG plot beside it."""
    with open(path, "w") as f:
        f.write(header + "\n\n| row | bpw | logits err | Kiln PPL | llama.cpp PPL |\n|---|---:|---:|---:|---:|\n")
        for name, (bpw, err, ppl, peer) in results.items():
            f.write("| %s | %.3f | %s | %s | %s |\n" % (
                name, bpw, "%.3e" % err if err is not None else "-", "%.4f" % ppl if ppl else "-",
                "%.4f" % peer if peer else "-"))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    series = {"Kiln RTN": lambda n: n.startswith("kiln p") or n.startswith("kiln q"),
              "Kiln GPTQ/AWQ/mixed": lambda n: n.startswith("kiln ") and not (n.startswith("kiln p") or
                                                                            n.startswith("kiln q")),
              "llama.cpp": lambda n: n.startswith("llama.cpp") and "imatrix" not in n,
              "llama.cpp imatrix": lambda n: "imatrix" in n}
    for (label, member), marker in zip(series.items(), "os^v"):
        points = sorted((bpw, ppl if ppl else peer, n) for n, (bpw, err, ppl, peer) in results.items()
                        if member(n) and (ppl or peer) and bpw < 9)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker, label=label)
    teacher = results.get("f16 teacher")
    if teacher:
        ax.axhline(teacher[2], color="gray", linestyle="--", label="F16 teacher")
    ax.set_xlabel("bits per weight (2-D tensors, scales and zeros counted)")
    ax.set_ylabel("perplexity (Kiln's where it loads the file, else llama.cpp's)")
    ax.set_yscale("log")
    ax.set_title(header.splitlines()[0].lstrip("# "))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path[:-3] + ".svg" if path.endswith(".md") else path + ".svg")


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), proc.stderr[-3000:]))
    return proc


def llama_quantize(src, dst, ftype, token_embedding_type=None):
    code = ("import sys, llama_cpp\n"
            "p = llama_cpp.llama_model_quantize_default_params()\n"
            "p.ftype = %d\np.nthread = %s\n"
            "%s"
            "sys.exit(llama_cpp.llama_model_quantize(%r, %r, p))\n") % (
                ftype, THREADS, "p.token_embedding_type = %d\n" % token_embedding_type
                if token_embedding_type is not None else "", src.encode(), dst.encode())
    run([sys.executable, "-c", code])


def tensors(path):
    import gguf
    return {t.name: (t.tensor_type.name, np.asarray(t.data).view(np.uint8).reshape(-1))
            for t in gguf.GGUFReader(path).tensors}


def compare_ggml_files(name, kiln_path, llama_path):
    ours, theirs = tensors(kiln_path), tensors(llama_path)
    assert ours.keys() == theirs.keys(), "tensor names differ"
    quantized = [n for n in ours if ours[n][0] != "F32"]
    equal = [n for n in quantized if ours[n][0] == theirs[n][0] and np.array_equal(ours[n][1], theirs[n][1])]
    other_type = [n for n in quantized if ours[n][0] != theirs[n][0]]
    other_bytes = [n for n in quantized if n not in equal and n not in other_type]
    floats_equal = all(np.array_equal(ours[n][1], theirs[n][1]) for n in ours if n not in quantized)
    print("%s bytes: %d of %d quantized tensors equal llama.cpp's, %d differ in bytes, "
          "%d in type%s; float tensors %s" % (
              name, len(equal), len(quantized), len(other_bytes), len(other_type),
              "".join(" (%s: Kiln %s, llama.cpp %s)" % (n, ours[n][0], theirs[n][0]) for n in other_type),
              "equal" if floats_equal else "DIFFER"))
    return not other_bytes and floats_equal


def bits_per_weight(path):
    """Bytes of all tensors * 8 / values, over the tensors of linear layers
    and the embedding (the 2-D ones), as llama.cpp counts BPW."""
    import gguf
    size = count = 0
    for t in gguf.GGUFReader(path).tensors:
        if len(t.shape) == 2:
            size += t.n_bytes
            count += int(np.prod(t.shape))
    return 8.0 * size / count


def llama_perplexity(path, text, ctx, chunks):
    """llama-perplexity's figure from llama.cpp in a child process."""
    code = r'''
import sys, numpy as np, llama_cpp
import llama_cpp.llama_cpp as lib
path, text_path, ctx, chunks, extra = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
default = lib.llama_model_default_params
def params():
    p = default(); p.use_extra_bufts = extra; return p
lib.llama_model_default_params = params
llm = llama_cpp.Llama(model_path=path, n_ctx=ctx, n_batch=ctx, n_threads=int(sys.argv[6]), logits_all=True,
                      type_k=0, type_v=0, verbose=False)
tokens = llm.tokenize(open(text_path, "rb").read(), add_bos=False, special=False)
bos = llm.tokenize(b"", add_bos=True, special=False)
nll, count = 0.0, 0
for c in range(min(chunks, len(tokens) // ctx)):
    chunk = tokens[c * ctx:(c + 1) * ctx]
    if len(bos) == 1:
        chunk[0] = bos[0]
    llm.reset()
    llm.eval(chunk)
    logits = np.array(llm.scores[:ctx], dtype=np.float64)
    for pos in range(ctx // 2, ctx - 1):
        row = logits[pos]
        mx = row.max()
        nll += np.log(np.exp(row - mx).sum()) + mx - row[chunk[pos + 1]]
        count += 1
print("PPL %.6f" % np.exp(nll / count))
'''
    out = run([sys.executable, "-c", code, path, text, str(ctx), str(chunks), "1" if extra_bufts() else "0", THREADS]).stdout
    return float(re.search(r"PPL ([0-9.]+)", out).group(1))


class Row:
    def __init__(self, name, gguf_path=None, quantize=None, note=""):
        self.name, self.gguf, self.quantize, self.note = name, gguf_path, quantize, note


def main(src, work, tools, lib, text, ctx, chunks, wanted, calib_text=None, calib_chunks=4, peer_bin=None,
         table=None):
    ok = True
    os.makedirs(work, exist_ok=True)
    compile_ = os.path.join(tools, "kiln-compile")
    teacher = os.path.join(work, "teacher-f16.gguf")
    if not os.path.exists(teacher):
        run([sys.executable, os.path.join(HERE, "..", "..", "Inputs", "make_float_gguf.py"), src, teacher, "f16"])
    print("teacher: %s dequantized to F16 by the gguf package" % os.path.basename(src))

    rows = [Row("f16 teacher", teacher)]
    ggml_rows = [f for f in ("q8_0", "q4_0") if wanted == "all" or f in wanted]
    for fmt in LLAMA_ONLY:
        if wanted == "all" or fmt in wanted or "llama.cpp " + fmt in wanted:
            theirs = os.path.join(work, "llama-%s.gguf" % fmt)
            llama_quantize(teacher, theirs, LLAMA_FTYPE[fmt])
            rows.append(Row("llama.cpp %s" % fmt, theirs))
    for name, (ftype, embd) in LLAMA_LOW_EMBEDDING.items():
        if wanted == "all" or "llama.cpp " + name in wanted:
            theirs = os.path.join(work, "llama-%s.gguf" % name.replace(" ", "-"))
            if not os.path.exists(theirs):
                llama_quantize(teacher, theirs, ftype, embd)
            rows.append(Row("llama.cpp " + name, theirs))
    for fmt in ggml_rows:
        ours = os.path.join(work, "kiln-%s.gguf" % fmt)
        theirs = os.path.join(work, "llama-%s.gguf" % fmt)
        run([compile_, "-q", teacher, "--quantize=%s,format=gguf" % GGML_OPTIONS[fmt], "--emit=gguf", "-o", ours])
        llama_quantize(teacher, theirs, LLAMA_FTYPE[fmt])
        ok &= compare_ggml_files(fmt, ours, theirs)
        # llama.cpp loads Kiln's file; its logits against those of its own.
        got = LlamaPeer(ours, n_ctx=128, n_threads=int(THREADS), logits_all=True, type_k=0, type_v=0)
        want = LlamaPeer(theirs, n_ctx=128, n_threads=int(THREADS), logits_all=True, type_k=0, type_v=0)
        prompt = want.tokenize(PROMPT.encode(), add_bos=True, special=False)
        diff = rel(got.eval(prompt), want.eval(prompt))
        got.close()
        want.close()
        print("%s: llama.cpp on Kiln's GGUF vs on its own: logits rel diff %.3e" % (fmt, diff))
        rows += [Row("kiln %s (gguf)" % fmt, ours), Row("llama.cpp %s" % fmt, theirs)]
    for name, options in PACKED.items():
        if wanted == "all" or name in wanted:
            rows.append(Row(name, quantize=options))
    calibrated = [n for n in CALIBRATED if calib_text and (wanted == "all" or n in wanted)]
    if calibrated:
        stats = collect_statistics(tools, teacher, calib_text, ctx, calib_chunks, work)
        print("calibration: %d chunks of %d tokens of %s" % (calib_chunks, ctx, calib_text))
        for name in calibrated:
            rows.append(Row(name, quantize=CALIBRATED[name] + ",stats=" + stats))
    imatrix_types = [t for t in IMATRIX_TYPES if calib_text and peer_bin and
                     (wanted == "all" or "llama.cpp %s imatrix" % t in wanted)]
    if imatrix_types:
        files = llama_imatrix_files(peer_bin, teacher, calib_text, ctx, calib_chunks, imatrix_types, work)
        print("llama.cpp imatrix: llama-imatrix, %d chunks of %d tokens of %s" % (calib_chunks, ctx, calib_text))
        rows += [Row("llama.cpp %s imatrix" % t, files[t]) for t in imatrix_types]
    low_types = [t for t in IMATRIX_LOW_EMBEDDING if calib_text and peer_bin and
                 (wanted == "all" or "llama.cpp %s imatrix embd q4_0" % t in wanted)]
    if low_types:
        files = llama_imatrix_files(peer_bin, teacher, calib_text, ctx, calib_chunks, low_types, work, "q4_0")
        rows += [Row("llama.cpp %s imatrix embd q4_0" % t, files[t]) for t in low_types]

    lib_kiln = None
    teacher_logits = None
    print("%-22s %6s %12s %10s %12s" % ("row", "bpw", "logits err", "Kiln PPL", "llama.cpp PPL"))
    results = {}
    for i, row in enumerate(rows):
        artifact = os.path.join(work, "row%d.kiln" % i)
        cmd = [compile_, "-q", "--activations=" + ACTIVATIONS.get(row.name, "f32"), row.gguf or teacher, "-o",
               artifact]
        if row.quantize:
            cmd.insert(2, "--quantize=" + row.quantize)
            if "budget=" in row.quantize:
                # Each weight's width and group, as chosen (after the
                # method's rounding: GPTQ runs twice).
                bpw = packed_bits_per_weight(compile_, teacher, row.quantize, work)
            else:
                # Uniform packed weights: scale (and zero) per group.
                bits, group = [int(re.search(k + r"=(\d+)", row.quantize).group(1)) for k in ("bits", "group")]
                bpw = bits + 16.0 * (2 if "asym" in row.quantize else 1) / group
        else:
            bpw = bits_per_weight(row.gguf)
        err = ppl = None
        compiled = subprocess.run(cmd, capture_output=True, text=True)
        # llama.cpp's files may hold types Kiln does not load (IQ*).
        if compiled.returncode != 0 and not row.name.startswith("llama.cpp"):
            raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), compiled.stderr[-3000:]))
        if compiled.returncode == 0:
            kiln = Kiln(lib, artifact)
            prompt = kiln.tokenize(PROMPT, False)
            logits = kiln.eval(prompt).astype(np.float64)
            if teacher_logits is None:
                teacher_logits = logits
            err = rel(logits, teacher_logits)
            out = run([os.path.join(tools, "kiln-run"), "-m", artifact, "--perplexity", text, "--ctx", str(ctx),
                       "--chunks", str(chunks), "-t", THREADS]).stdout
            ppl = float(re.search(r"PPL = ([0-9.]+)", out).group(1))
            os.remove(artifact)
        peer = llama_perplexity(row.gguf, text, ctx, chunks) if row.gguf else None
        results[row.name] = (bpw, err, ppl, peer)
        print("%-22s %6.3f %12s %10s %12s" % (row.name, bpw, "%.3e" % err if err is not None else "-",
                                             "%.4f" % ppl if ppl else "-", "%.4f" % peer if peer else "-"),
              flush=True)

    # What must hold: fewer bits, more error (RTN on one teacher); equal GGUF
    # bytes give equal logits in Kiln.
    packed = [(results[n][0], results[n][1], n) for n in results
              if n.startswith("kiln p") and "asym" not in n and "search" not in n]
    packed.sort()
    monotone = all(a[1] >= b[1] for a, b in zip(packed, packed[1:]))
    print("packed sym rows: logits error falls as bits rise: %s" % ("ok" if monotone else "FAIL %s" % packed))
    ok &= monotone
    for fmt in ggml_rows:
        a, b = results["kiln %s (gguf)" % fmt], results["llama.cpp %s" % fmt]
        print("%s: Kiln-written vs llama.cpp-written, Kiln PPL %.4f vs %.4f" % (fmt, a[2], b[2]))
    if table:
        write_table(table, results, "# %s: quantized from its F16 teacher\n\nPerplexity of %s, context %d, "
                    "%d chunks; calibration (Kiln's statistics, llama-imatrix) on %s, %d chunks. "
                    "Kiln PPL: kiln-run --perplexity, f32 activations (but the wXaY rows); llama.cpp PPL: llama.cpp %s "
                    "(llama-perplexity's method, in-process) on the same file." % (
                        os.path.basename(src), text, ctx, chunks, calib_text, calib_chunks,
                        "0.3.36 (llama-cpp-python)"))
        print("table: %s" % table)
    print("PASS" if ok else "FAIL")
    return ok


if __name__ == "__main__":
    src, work, tools, lib, text, ctx, chunks, rows = sys.argv[1:9]
    calib = sys.argv[9] if len(sys.argv) > 9 else None
    calib_chunks = int(sys.argv[10]) if len(sys.argv) > 10 else 4
    peer_bin = sys.argv[11] if len(sys.argv) > 11 else None
    table = sys.argv[12] if len(sys.argv) > 12 else None
    sys.exit(0 if main(src, work, tools, lib, text, int(ctx), int(chunks),
                       "all" if rows == "all" else rows.split(","), calib, calib_chunks, peer_bin, table) else 1)
