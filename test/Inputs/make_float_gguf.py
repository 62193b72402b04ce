"""Writes a float copy of a quantized GGUF model: every quantized tensor
dequantized by the gguf package (to F16 or F32), everything else (metadata,
float tensors) as it was. The float teacher for kiln-quantize's accuracy
tests: its weights lie on the source's 4-bit grid.

usage: make_float_gguf.py SRC.gguf DST.gguf [f16|f32]
"""

import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

src, dst = sys.argv[1], sys.argv[2]
out_type = sys.argv[3] if len(sys.argv) > 3 else "f16"
reader = gguf.GGUFReader(src)
arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
writer = gguf.GGUFWriter(dst, arch)
for field in reader.fields.values():
    # GGUFWriter writes the architecture and the GGUF.* header fields itself.
    if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
        continue
    value_type = field.types[0]
    sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
    value = field.contents()
    if field.name == gguf.Keys.General.FILE_TYPE:
        value = gguf.LlamaFileType.MOSTLY_F16 if out_type == "f16" else gguf.LlamaFileType.ALL_F32
    writer.add_key_value(field.name, value, value_type, sub_type=sub_type)

dtype = np.float16 if out_type == "f16" else np.float32
qtype = QT.F16 if out_type == "f16" else QT.F32
tensors = []
for t in reader.tensors:
    if t.tensor_type in (QT.F32, QT.F16, QT.BF16):
        data = np.asarray(t.data)  # norms and other float tensors stay as they are
        if t.tensor_type == QT.BF16:
            data = gguf.quants.dequantize(data, QT.BF16).astype(np.float32)
        tensors.append((t.name, data, None))
    else:
        shape = tuple(int(d) for d in reversed(t.shape))  # numpy order
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(shape)
        tensors.append((t.name, values.astype(dtype), qtype))
for name, data, raw_type in tensors:
    writer.add_tensor(name, data, raw_dtype=raw_type)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
