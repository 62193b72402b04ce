#!/usr/bin/env python3
"""Writes a seed corpus for kiln-opt-fuzzer from the kiln lit tests: every
`// -----` chunk of test/Dialect/Kiln/*.mlir (valid and invalid IR alike) and
the other kiln inputs, cut further into one seed per top-level function so
that seeds stay short, with comment lines (RUN, CHECK, expected-error)
removed. Usage: gen-mlir-seeds.py OUTPUT_DIR
"""
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SOURCES = ["test/Dialect/Kiln/*.mlir", "test/Conversion/KilnToCPU/*.mlir",
           "test/Examples/*.mlir", "test/Tools/Inputs/*.mlir"]


def chunks(text):
    for chunk in re.split(r"^// -----.*$", text, flags=re.M):
        lines = [l for l in chunk.splitlines() if not l.lstrip().startswith("//")]
        body = "\n".join(l for l in lines).strip()
        if not body:
            continue
        yield body
        # One seed per top-level func.func when a chunk holds several.
        funcs = re.split(r"^(?=func\.func)", body, flags=re.M)
        if len(funcs) > 2:
            for f in funcs:
                if f.strip():
                    yield f.strip()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = 0
    for pattern in SOURCES:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for seed in chunks(text):
                with open(os.path.join(out, "seed-%04d.mlir" % n), "w",
                          encoding="utf-8") as f:
                    f.write(seed + "\n")
                n += 1


if __name__ == "__main__":
    main()
