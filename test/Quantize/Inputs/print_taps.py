"""Prints the calibration taps of a .kiln artifact's manifest, one line each
("tap COLS WEIGHTS"), and whether their [max_tokens, cols] f32 blocks lie
apart inside scratch. Layout: include/kiln/runtime/Artifact.h."""
import json, struct, sys

data = open(sys.argv[1], "rb").read()
assert data[:8] == b"KILNART\0", "not a .kiln artifact"
count, entry_size, table = struct.unpack_from("<IIQ", data, 24)
for i in range(count):
    entry = data[table + i * entry_size:table + (i + 1) * entry_size]
    if entry[:32].rstrip(b"\0") == b"manifest":
        _, _, offset, size = struct.unpack_from("<IIQQ", entry, 32)
        manifest = json.loads(data[offset:offset + size])
rows, scratch = manifest["entry"]["max_tokens"], manifest["entry"]["scratch_bytes"]
blocks = []
for tap in manifest["taps"]:
    print("tap", tap["cols"], ",".join(tap["weights"]))
    blocks.append((tap["offset"], tap["offset"] + 4 * rows * tap["cols"]))
blocks.sort()
apart = all(a[1] <= b[0] for a, b in zip(blocks, blocks[1:])) and blocks[-1][1] <= scratch
print("apart inside scratch:", apart)
