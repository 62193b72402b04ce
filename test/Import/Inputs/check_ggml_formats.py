"""Compares the rows of GGMLFormats.h with gguf-py's GGML_QUANT_SIZES.

Reads the table's rows, `{GGMLType::Q4_0, "q4_0", 32, 18, ...}`, from the
header; prints the number of types that agree, or each disagreement and
exits 1.
"""
import re
import sys

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

ROW = re.compile(r'\{GGMLType::(\w+), "(\w+)", (\d+), (\d+),')
ENUMERATOR = re.compile(r'^  (\w+) = (\d+),$', re.M)
# gguf-py's Q8_1 is (32, 4 + 4 + 32), float d and s; ggml's block_q8_1 has
# two ggml_half (36 bytes). Q8_1 is an activation format, not in files.
KNOWN_DIFFERENT = {"Q8_1"}

header = open(sys.argv[1]).read()
rows = {m[1]: (m[2], int(m[3]), int(m[4])) for m in ROW.finditer(header)}
ids = {m[1]: int(m[2]) for m in ENUMERATOR.finditer(header)}
errors, agree = [], 0
for t in GGMLQuantizationType:
    if t.name in KNOWN_DIFFERENT or t.name not in rows:
        if t.name not in rows and t.value <= 39:
            errors.append(f"{t.name} ({t.value}) is missing from the table")
        continue
    name, values, size = rows[t.name]
    if (name.upper() != t.name or ids.get(t.name) != t.value
            or (values, size) != GGML_QUANT_SIZES[t]):
        errors.append(f"{t.name} ({t.value}): table {name} "
                      f"({ids.get(t.name)}) {(values, size)}, "
                      f"gguf-py {GGML_QUANT_SIZES[t]}")
    else:
        agree += 1
if errors:
    print("\n".join(errors))
    sys.exit(1)
print(f"{agree} ggml types agree with gguf-py")
