#!/bin/sh
# ferry check: --json shape, exit status, and every probe cross-checked against
# an independent experiment made here in Python (not against this machine's
# expected answers, so the test holds on any kernel).
. "$(dirname "$0")/lib.sh"

expect_rc 0 "check --json exits 0 where dump and restore can work" "$FERRY" check --json
cp "$T/out" "$T/check.json"
expect_rc 0 "check (text) exits 0" "$FERRY" check
expect_in "$T/out" "backends (auto picks" "text lists backends"
expect_rc 2 "unknown option is a usage error" "$FERRY" check --bogus
expect_rc 0 "help check" "$FERRY" help check
expect_in "$T/out" "--json" "help check documents --json"

python3 - "$T/check.json" <<'PY' || fails=$((fails + 1))
import ctypes, fcntl, json, mmap, os, struct, sys

doc = json.load(open(sys.argv[1]))
feat = doc["features"]
keys = ["procmap_query", "pagemap_scan", "uffd_wp_async", "soft_dirty", "process_vm_pidfd",
        "process_vm_nowait", "process_vmsplice", "pidfd_getfd", "clone3_set_tid", "io_uring",
        "ptrace", "pidfd_open", "proc_pagemap", "process_vm_readv", "unix_diag"]
bad = [k for k in keys if not isinstance(feat.get(k), bool)]
assert not bad, f"missing or non-boolean keys: {bad}"
for fam in ("layout", "pages", "tracker", "reader", "sink"):
    b = doc["backends"][fam]
    assert b["auto"] in b["usable"], f"{fam}: auto {b['auto']} not usable"
assert doc["ok"] is True and doc["missing"] is None

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
PS = os.sysconf("SC_PAGE_SIZE")

def iowr(nr, size):
    return (3 << 30) | (size << 16) | (ord("f") << 8) | nr

def addr_of(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))

# PROCMAP_QUERY: a 104-byte struct, covering-or-next from address 0.
def procmap_query():
    buf = bytearray(struct.pack("<QQQ", 104, 0x10, 0) + bytes(104 - 24))
    with open("/proc/self/maps", "rb") as f:
        try:
            fcntl.ioctl(f.fileno(), iowr(17, 104), buf, True)
        except OSError:
            return False
    start, end = struct.unpack_from("<QQ", buf, 24)
    return end > start

# PAGEMAP_SCAN for present pages over two pages of which one is touched.
def pagemap_scan():
    m = mmap.mmap(-1, 2 * PS)
    m[0] = 1
    a = addr_of(m)
    vec = (ctypes.c_uint64 * 12)()
    arg = bytearray(struct.pack("<12Q", 96, 0, a, a + 2 * PS, 0, ctypes.addressof(vec), 4,
                                0, 0, 1 << 3, 0, 1 << 3))
    with open("/proc/self/pagemap", "rb") as f:
        try:
            n = fcntl.ioctl(f.fileno(), iowr(16, 96), arg, True)
        except OSError:
            return False
    return n == 1 and vec[0] == a and vec[1] == a + PS

# soft-dirty: a write after clear_refs 4 must set pagemap bit 55.
def soft_dirty():
    m = mmap.mmap(-1, PS)
    m[0] = 1
    with open("/proc/self/clear_refs", "w") as f:
        f.write("4")
    m[0] = 2
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(addr_of(m) // PS * 8)
        pme = struct.unpack("<Q", f.read(8))[0]
    return bool(pme & (1 << 55))

# process_vm_readv flags, seed 000: EFAULT = known flag, EINVAL = unknown.
def vm_flag(flag):
    r = libc.syscall(310, os.getpid(), None, 1, None, 1, ctypes.c_ulong(flag))
    return r < 0 and ctypes.get_errno() == 14

# unix_diag: NETLINK_SOCK_DIAG asked for one end of a socketpair by inode
# names the other end as its peer (UNIX_DIAG_PEER, attribute 2).
def unix_diag():
    import socket
    a, b = socket.socketpair()
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4)
    req = struct.pack("<BBHIIIII", socket.AF_UNIX, 0, 0, 0, os.fstat(a.fileno()).st_ino, 1 << 2,
                      0xffffffff, 0xffffffff)
    nl.send(struct.pack("<IHHII", 16 + len(req), 20, 1, 0, 0) + req)
    ans = nl.recv(4096)
    if struct.unpack_from("<H", ans, 4)[0] != 20:
        return False
    off = 16 + 16
    while off + 4 <= len(ans):
        alen, atype = struct.unpack_from("<HH", ans, off)
        if atype == 2:
            return struct.unpack_from("<I", ans, off + 4)[0] == os.fstat(b.fileno()).st_ino
        off += (alen + 3) & ~3
    return False

mine = {"procmap_query": procmap_query(), "pagemap_scan": pagemap_scan(), "unix_diag": unix_diag(),
        "soft_dirty": soft_dirty(), "process_vm_pidfd": vm_flag(1),
        "process_vm_nowait": vm_flag(2)}
wrong = {k: (feat[k], v) for k, v in mine.items() if feat[k] != v}
assert not wrong, f"ferry and the independent probe disagree (ferry, here): {wrong}"
if feat["uffd_wp_async"]:
    assert feat["pagemap_scan"], "uffd_wp_async without pagemap_scan"
    assert doc["backends"]["tracker"]["auto"] == "uffd-wp"
if not feat["soft_dirty"] and not feat["uffd_wp_async"]:
    assert doc["backends"]["tracker"]["auto"] == "hash"
print("ok: --json keys, backends and probes agree with independent checks:",
      ", ".join(f"{k}={v}" for k, v in mine.items()))
PY
finish
