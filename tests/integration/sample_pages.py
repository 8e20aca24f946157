#!/usr/bin/env python3
"""samples_found IMAGES_DIR RECORD [N]: take N distinct 64-byte pieces of the
data pages in IMAGES_DIR/pages.img (a received final dump's pages, so the
workload's own memory) and print how many of them RECORD contains; also how
many the pages file itself contains (N, unless the sampler is broken)."""
import random, sys

pages = open(sys.argv[1] + '/pages.img', 'rb').read()
rec = open(sys.argv[2], 'rb').read()
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
rnd = random.Random(1)
samples = set()
for _ in range(n * 50):
    if len(samples) == n or len(pages) < 4096 * 2:
        break
    off = rnd.randrange(4096, len(pages) - 64) & ~63
    s = pages[off:off + 64]
    if s.count(0) < 16:            # real data, not a hole or a header
        samples.add(s)
print(sum(1 for s in samples if s in rec), sum(1 for s in samples if s in pages), len(samples))
