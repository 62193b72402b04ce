"""Prints a .kiln artifact's header GPU archs, its sections (name, kind) and
its manifest's targets, kernel count, kernels and images (one per line), for
FileCheck. Layout: include/kiln/runtime/Artifact.h."""
import json, struct, sys

data = open(sys.argv[1], "rb").read()
assert data[:8] == b"KILNART\0", "not a .kiln artifact"
count, entry_size, table = struct.unpack_from("<IIQ", data, 24)
print("gpu_archs", data[64:120].rstrip(b"\0").decode())
manifest = None
for i in range(count):
    entry = data[table + i * entry_size:table + (i + 1) * entry_size]
    name = entry[:32].rstrip(b"\0").decode()
    kind, _, offset, size = struct.unpack_from("<IIQQ", entry, 32)
    print("section", name, kind, "empty" if size == 0 else "nonempty")
    if name == "manifest":
        manifest = json.loads(data[offset:offset + size])
    if name.startswith("ptx."):
        text = data[offset:offset + size].decode()
        print("ptx", name, text.count(".visible .entry"), "entries",
              "target", text.split(".target ")[1].split()[0])
print("targets", " ".join(manifest["targets"]))
print("kernels", len(manifest["cuda"]["kernels"]))
for k in manifest["cuda"]["kernels"]:
    print("kernel", k)
for image in manifest["cuda"]["images"]:
    print("image", image["format"], image["arch"], image["section"])
print("symbol", manifest["entry"]["symbol"], "scratch", manifest["entry"]["scratch_bytes"] > 0)
print("host", " ".join(h["section"] for h in manifest["host"]))
