#!/usr/bin/env python3
"""Writes a seed corpus for kiln-import-fuzzer: the small Llama-family GGUF
models of test/Import/Inputs/make_gguf.py, one per case (valid models and
each way metadata or tensors can be wrong). Usage: gen-import-seeds.py DIR
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE = os.path.join(HERE, "..", "..", "..", "test", "Import", "Inputs",
                    "make_gguf.py")
# Cases whose files are large or slow to import are left out.
SKIP = {"huge-kv-cache"}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    usage = subprocess.run([sys.executable, MAKE], capture_output=True,
                           text=True).stderr
    cases = usage[usage.index("{") + 1:usage.index("}")].split("|")
    for case in cases:
        if case not in SKIP:
            subprocess.run([sys.executable, MAKE, case,
                            os.path.join(out, case + ".gguf")], check=True)


if __name__ == "__main__":
    main()
