#!/usr/bin/env python3
"""Pack an image directory (and its parent at DIR/p, if any) into one input
for tests/fuzz/fuzz_images.c: records of <u8 slot><u32 LE length><bytes>."""
import os
import struct
import sys

FILES = ["inventory.img", "process.img", "threads.img", "vmas.img", "fds.img",
         "pagemap.img", "pages.img"]


def pack(d):
    out = b""
    for base, sub in ((0, d), (8, os.path.join(d, "p"))):
        for i, name in enumerate(FILES, start=1):
            p = os.path.join(sub, name)
            if os.path.exists(p):
                data = open(p, "rb").read()
                out += struct.pack("<BI", base + i, len(data)) + data
    p = os.path.join(d, "fdata.img")
    if os.path.exists(p):
        data = open(p, "rb").read()
        out += struct.pack("<BI", 17, len(data)) + data
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: pack.py IMAGE_DIR OUTPUT")
    with open(sys.argv[2], "wb") as f:
        f.write(pack(sys.argv[1]))
