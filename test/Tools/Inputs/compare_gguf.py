"""Compares two GGUF files read by the gguf package: metadata (names, types,
values) and tensors (names, shapes, types, bytes). Prints one line.

usage: compare_gguf.py A.gguf B.gguf
"""

import sys

import gguf
import numpy as np

a, b = (gguf.GGUFReader(p) for p in sys.argv[1:3])
fields = lambda r: {f.name: (f.types, str(f.contents())) for f in r.fields.values()
                    if not f.name.startswith("GGUF.")}
tensors = lambda r: {t.name: (t.tensor_type, tuple(t.shape), np.asarray(t.data).view(np.uint8).tobytes())
                     for t in r.tensors}
fa, fb, ta, tb = fields(a), fields(b), tensors(a), tensors(b)
diff = sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
tdiff = sorted(k for k in ta.keys() | tb.keys() if ta.get(k) != tb.get(k))
print("metadata: %d keys, %d differ %s; tensors: %d, %d differ %s" % (
    len(fa), len(diff), diff[:3], len(ta), len(tdiff), tdiff[:3]))
