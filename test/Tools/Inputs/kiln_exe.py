"""Reads and damages executables from kiln-compile --emit=exe (layout:
include/kiln/runtime/Artifact.h, KilnExecutableTrailer).

    kiln_exe.py layout EXE ARTIFACT   how the model sits in EXE
    kiln_exe.py flip EXE OUT          OUT = EXE with the model's last byte flipped
    kiln_exe.py truncate EXE OUT N    OUT = EXE without its last N bytes
"""
import os
import stat
import struct
import sys

TRAILER = struct.Struct("<QQ8s")  # artifactOffset, artifactSize, magic
SECTION = struct.Struct("<32sIIQQQQQ")  # KilnSectionEntry


def trailer(data):
    offset, size, magic = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    assert magic == b"KILNEXE\0", magic
    return offset, size


def layout(exe, artifact_path):
    data = open(exe, "rb").read()
    offset, size = trailer(data)
    embedded = data[offset:offset + size]
    artifact = open(artifact_path, "rb").read()
    print("artifact at a multiple of 65536:", "yes" if offset % 65536 == 0 else "no")
    print("artifact ends at the trailer:",
          "yes" if offset + size + TRAILER.size == len(data) else "no")
    print("embedded artifact equals %s:" % os.path.basename(artifact_path),
          "yes" if embedded == artifact else "no")
    count = struct.unpack_from("<I", embedded, 24)[0]
    table = struct.unpack_from("<Q", embedded, 32)[0]
    for i in range(count):
        name, _, _, sec_offset, _, _, _, _ = SECTION.unpack_from(
            embedded, table + i * SECTION.size)
        if name.rstrip(b"\0") == b"weights":
            print("weights page-aligned in the file:",
                  "yes" if (offset + sec_offset) % 4096 == 0 else "no")
    print("mode %o" % stat.S_IMODE(os.stat(exe).st_mode))


def flip(exe, out):
    data = bytearray(open(exe, "rb").read())
    offset, size = trailer(data)
    data[offset + size - 1] ^= 0xFF
    write(out, data)


def truncate(exe, out, n):
    data = open(exe, "rb").read()
    write(out, data[:len(data) - n])


def write(out, data):
    with open(out, "wb") as f:
        f.write(data)
    os.chmod(out, 0o755)


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "layout":
        layout(sys.argv[2], sys.argv[3])
    elif command == "flip":
        flip(sys.argv[2], sys.argv[3])
    elif command == "truncate":
        truncate(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit("unknown command " + command)
