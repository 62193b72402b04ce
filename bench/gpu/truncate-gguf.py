#!/usr/bin/env python3
"""Keeps the first N blocks of a Llama-family GGUF (real weights, fewer layers):
  truncate-gguf.py IN.gguf N OUT.gguf
A device call carries at most 64 MiB; SmolLM2-135M Q4_1 (99 MB as a cuda
artifact) does not fit, its first 12 blocks do. The logits are those of a
12-layer network, not of the model: for comparing devices on real weights."""
import sys
import gguf

src, keep, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = gguf.GGUFReader(src)
arch = r.fields["general.architecture"]
arch = bytes(arch.parts[arch.data[0]]).decode()
w = gguf.GGUFWriter(dst, arch)
for f in r.fields.values():
    if f.name.startswith("GGUF.") or f.name == "general.architecture":
        continue
    t = f.types[0]
    if f.name == f"{arch}.block_count":
        w.add_uint32(f.name, keep)
    elif t == gguf.GGUFValueType.ARRAY:
        sub = f.types[1]
        vals = [bytes(f.parts[i]).decode("utf-8", "surrogateescape") if sub == gguf.GGUFValueType.STRING
                else f.parts[i][0].item() for i in f.data]
        w.add_array(f.name, vals) if sub != gguf.GGUFValueType.STRING else w.add_array(f.name, vals)
    elif t == gguf.GGUFValueType.STRING:
        w.add_string(f.name, bytes(f.parts[f.data[0]]).decode("utf-8", "surrogateescape"))
    else:
        w.add_key_value(f.name, f.parts[f.data[0]][0].item(), t)
for t in r.tensors:
    if t.name.startswith("blk.") and int(t.name.split(".")[1]) >= keep:
        continue
    w.add_tensor(t.name, t.data, raw_shape=list(reversed([int(d) for d in t.shape])) if False else None,
                 raw_dtype=t.tensor_type)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
