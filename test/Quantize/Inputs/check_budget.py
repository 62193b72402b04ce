"""Reads the weight types of a kiln-compile --emit=mlir module and prints the
parameter-weighted mean bits per weight of its quantized linear weights
(codes plus the scales and zeros of each group, as the budget counts them),
each weight's width, and whether the mean is within BUDGET.

usage: check_budget.py MODULE.mlir BUDGET
"""
import re
import sys

text = open(sys.argv[1]).read()
budget = float(sys.argv[2])
scalar = {"f16": 16, "bf16": 16, "f32": 32}
total_bits = total_params = 0
widths = []
pattern = re.compile(r"dense_resource<([\w.]+?)(?:_\d+)?> : tensor<\d+xi8> -> "
                     r"!kiln\.weight<(\d+)x(\d+)x#kiln\.quant<bits = (\d+), group = (\d+), "
                     r"scale = (\w+)(?:, zero = (\w+))?[^>]*>>")
for name, rows, k, bits, group, scale, zero in pattern.findall(text):
    params = int(rows) * int(k)
    per_group = int(bits) * int(group) + scalar[scale] + (scalar[zero] if zero else 0)
    total_bits += params * per_group / int(group)
    total_params += params
    widths.append("%s=%s" % (name, bits))
mean = total_bits / total_params
print("weights:", len(widths))
print("widths:", " ".join(widths))
print("bits per weight: %.4f, within %.2f: %s" % (mean, budget, mean <= budget + 1e-9))
