#!/usr/bin/env python3
"""Pack a dump directory tree (the dump, its parent at p/, a tree's other
processes at pid-PID/ and their parents) into one fuzz input, as
tests/fuzz/unpack.h reads it: records of <u8 slot><u32 LE length><bytes>,
slot 0 naming the directory the next files go into, slots 1..10 the image
files by type."""
import os
import struct
import sys

# enum img_type order (images/img.h), from 1.
FILES = ["inventory.img", "process.img", "threads.img", "vmas.img", "fds.img",
         "pagemap.img", "pages.img", "hashes.img", "fdata.img", "tree.img"]
DIR_SLOT = 0


def record(slot, data):
    return struct.pack("<BI", slot, len(data)) + data


def pack(root):
    out = b""
    for d, subdirs, _ in sorted(os.walk(root)):
        subdirs.sort()
        rel = os.path.relpath(d, root)
        if rel.count(os.sep) >= 3:
            continue
        files = [(i, os.path.join(d, n)) for i, n in enumerate(FILES, start=1)
                 if os.path.isfile(os.path.join(d, n))]
        if not files:
            continue
        out += record(DIR_SLOT, b"" if rel == "." else rel.encode())
        for slot, p in files:
            with open(p, "rb") as f:
                out += record(slot, f.read())
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: pack.py IMAGE_DIR OUTPUT")
    with open(sys.argv[2], "wb") as f:
        f.write(pack(sys.argv[1]))
