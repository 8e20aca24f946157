"""Write seed inputs for fuzz_stream: what a client sends after connecting.
usage: stream_seed.py OUTDIR"""
import os
import struct
import sys


def frame(t, payload):
    return struct.pack('<IIQ', 0x4d595246, t, len(payload)) + payload


def varint(field, v):
    out = bytes([field << 3])
    while True:
        b, v = v & 0x7f, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def blob(field, b):
    return bytes([field << 3 | 2, len(b)]) + b


hello = frame(1, varint(1, 3))


def file(d, name, data):
    return frame(3, blob(1, d) + blob(2, name) + varint(3, len(data))) + data


def pages(d, off, data):
    return frame(9, blob(1, d) + varint(2, off) + varint(3, len(data))) + data


def streamed(d, size):
    return frame(3, blob(1, d) + blob(2, b'pages.img') + varint(3, size) + varint(5, 1))


round1 = frame(4, blob(1, b'pre-1'))
final = frame(4, blob(1, b'') + varint(2, 1))
seeds = {
    'round': hello + file(b'pre-1', b'pages.img', b'\0' * 64) +
             file(b'pre-1', b'inventory.img', b'FRRY') + round1,
    'final': hello + file(b'', b'inventory.img', b'FRRY') + final + frame(6, b''),
    'streamed': hello + pages(b'pre-1', 0, b'\1' * 64) + pages(b'pre-1', 4096, b'\2' * 64) +
                streamed(b'pre-1', 8192) + file(b'pre-1', b'inventory.img', b'FRRY') + round1,
    'abort': hello + frame(7, varint(1, 0) + blob(2, b'why')),
}
os.makedirs(sys.argv[1], exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(sys.argv[1], name), 'wb') as f:
        f.write(data)
