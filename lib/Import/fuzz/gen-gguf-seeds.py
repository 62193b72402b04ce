#!/usr/bin/env python3
"""Writes a seed corpus of small valid GGUF files for kiln-gguf-fuzzer.

The files come from the `gguf` Python package's writer, an implementation
independent of Kiln's reader, and cover every metadata value type, string and
numeric arrays, a non-default alignment, and plain and block-quantized
tensors. Usage: gen-gguf-seeds.py OUTPUT_DIR
"""
import os
import sys

import numpy as np
import gguf

Q = gguf.GGMLQuantizationType


def write(path, alignment=None, tensors=(), metadata=True):
    w = gguf.GGUFWriter(path, "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if metadata:
        w.add_block_count(2)
        w.add_uint8("t.u8", 7)
        w.add_int8("t.i8", -3)
        w.add_uint16("t.u16", 300)
        w.add_int16("t.i16", -300)
        w.add_int32("t.i32", -70000)
        w.add_uint64("t.u64", 1 << 40)
        w.add_int64("t.i64", -(1 << 40))
        w.add_float32("t.f32", 0.5)
        w.add_float64("t.f64", 1.25)
        w.add_bool("t.bool", True)
        w.add_string("t.str", "hello")
        w.add_array("t.strs", ["a", "", "<s>"])
        w.add_array("t.ints", [1, -2, 3])
        w.add_array("t.floats", [0.5, -1.5])
    for name, array, raw in tensors:
        w.add_tensor(name, array, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    f32 = np.arange(16, dtype=np.float32).reshape(2, 8)
    f16 = np.arange(8, dtype=np.float16)
    # Quantized tensors are passed as raw bytes: rows x (blocks * blockBytes).
    q8 = np.full((2, 34), 3, dtype=np.uint8)      # 2 rows of 32 q8_0 values
    q41 = np.full((1, 40), 5, dtype=np.uint8)     # 1 row of 64 q4_1 values
    q4k = np.full((1, 144), 9, dtype=np.uint8)    # 1 row of 256 q4_K values
    write(os.path.join(out, "empty.gguf"), metadata=False)
    write(os.path.join(out, "metadata.gguf"))
    write(os.path.join(out, "f32.gguf"), tensors=[("w", f32, None)])
    write(os.path.join(out, "mixed.gguf"),
          tensors=[("a", f32, None), ("b", f16, None), ("c", q8, Q.Q8_0),
                   ("d", q41, Q.Q4_1), ("e", q4k, Q.Q4_K)])
    write(os.path.join(out, "align64.gguf"), alignment=64,
          tensors=[("a", f32, None), ("c", q8, Q.Q8_0)], metadata=False)


if __name__ == "__main__":
    main()
