#!/bin/sh
# Restore's validation before it creates anything (restore/validate.c,
# filecheck.c): a real dump passes; a corrupt page and a pre-dump are
# refused; files are the same by what they are (type, size, build-id,
# content), never by device and inode: copies of the program and its libc
# restore and run, a one-byte change with the same size and mtime is
# refused, a directory that gained an entry and an O_APPEND log that grew
# restore, and --file-validation=size|none loosen only size and content,
# never the type. Runs under tests/run.sh's subreaper.
. "$(dirname "$0")/lib.sh"
RST="$TOOLS/tools/rstcheck"
FK="$TOOLS/workloads/filekeep"
PIDS=""
"$TOOLS/workloads/memtest" "$T/w.desc" --mb 2 </dev/null >/dev/null 2>&1 &
W=$!
trap 'kill -9 $W $PIDS 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 200); do [ -e "$T/w.desc" ] && break; sleep 0.05; done

expect_rc 0 "dump to validate" "$FERRY" dump -t $W -D "$T/d" -R
expect_rc 0 "a fresh dump is restorable" "$RST" "$T/d"
expect_in "$T/out" "files unchanged" "reports the files it checked"
n=$(sed -n 's/.* \([0-9]*\) files unchanged/\1/p' "$T/out")
[ "${n:-0}" -ge 3 ] && ok "exe, libraries and the mapped data file checked ($n)" || fail "only ${n:-0} files checked"

cp "$T/d/pages.img" "$T/pages.good"
printf '\377' | dd of="$T/d/pages.img" bs=1 seek=$((4096 + 77)) conv=notrunc status=none
expect_rc 1 "a corrupt page is refused" "$RST" "$T/d"
expect_in "$T/err" "checksum mismatch" "names the checksum"
cp "$T/pages.good" "$T/d/pages.img"
expect_rc 0 "restorable again once repaired" "$RST" "$T/d"

cp "$T/w.desc.file" "$T/keep"
printf 'x' >>"$T/w.desc.file"
expect_rc 1 "a mapped file that grew is refused" "$RST" "$T/d"
expect_in "$T/err" "w.desc.file\`: size $(stat -c %s "$T/keep") then, $(stat -c %s "$T/w.desc.file") now" \
	"names the file and both sizes"
rm "$T/w.desc.file" && cp "$T/keep" "$T/w.desc.file"
expect_rc 0 "a mapped file replaced by an identical copy (another inode) is accepted" "$RST" "$T/d"
[ "$(stat -c %i "$T/w.desc.file")" != "$(stat -c %i "$T/keep")" ] || fail "the copy has the same inode"
printf '\001' | dd of="$T/w.desc.file" bs=1 seek=100 conv=notrunc status=none
touch -r "$T/keep" "$T/w.desc.file"
expect_rc 1 "one byte changed, same size and mtime: refused" "$RST" "$T/d" content
expect_in "$T/err" "w.desc.file\`: content differs" "says the content differs, naming the file"
expect_rc 0 "... accepted by size" "$RST" "$T/d" size
cp "$T/keep" "$T/w.desc.file"

"$TOOLS/tools/mkimage" "$T/pre" --kind pre >/dev/null
expect_rc 1 "a pre-dump is not restorable" "$RST" "$T/pre"
expect_in "$T/err" "is a pre-dump" "says to restore the final dump"

# ---- real restores of a process holding a directory fd, an O_APPEND log
# and a read-only data file, against files changed in every way.
# fk_check PID: the workload's own check, into FKC.
fk_check() {
	rm -f "$T/fk/check"
	kill -USR1 "$1" 2>/dev/null
	for _ in $(seq 100); do [ -s "$T/fk/check" ] && break; sleep 0.05; done
	FKC=$(cat "$T/fk/check" 2>/dev/null)
}
# runs_on PID WHAT: it checks itself twice, its counter moving on between.
runs_on() {
	fk_check "$1"
	a=$FKC
	sleep 0.2
	fk_check "$1"
	c1=$(echo "$a" | sed -n 's/^ok counter=\([0-9]*\).*/\1/p')
	c2=$(echo "$FKC" | sed -n 's/^ok counter=\([0-9]*\).*/\1/p')
	if [ -n "$c1" ] && [ -n "$c2" ] && [ "$c2" -gt "$c1" ]; then ok "$2 ($FKC)"; else fail "$2: \"$a\" then \"$FKC\""; fi
}
# restore_fk WHAT [PREFIX... --] [ARGS...]: restore the dump detached
# (PREFIX runs it, e.g. with_copies FILES --), expecting success; RP gets
# the PID. Kill it with end_fk.
restore_fk() {
	what=$1; shift
	rm -f "$T/pid"
	expect_rc 0 "$what" "$@" -d --pidfile "$T/pid"
	RP=$(cat "$T/pid" 2>/dev/null)
	[ -n "$RP" ] && PIDS="$PIDS $RP"
}
end_fk() {
	[ -n "${RP:-}" ] || return 0
	kill -9 "$RP" 2>/dev/null
	all_gone "$RP"
	RP=""
}

mkdir -p "$T/fk/sub"
"$FK" "$T/fk" </dev/null >/dev/null 2>&1 &
K=$!
PIDS="$PIDS $K"
wait_for "$T/fk/ready" || fail "filekeep did not start"
BIN=$(readlink -f "$FK")
LIBC=$(awk '$6 ~ /\/libc[.-][^/]*so/ {print $6; exit}' /proc/$K/maps)
COPY=$(mapped_files $K | tr '\n' ' ')
case " $COPY " in *" $BIN "*) ;; *) fail "mapped_files misses the program: $COPY" ;; esac
[ -n "$LIBC" ] && case " $COPY " in *" $LIBC "*) ;; *) fail "mapped_files misses libc: $COPY" ;; esac
expect_rc 0 "dump filekeep (ends it)" "$FERRY" dump -t $K -D "$T/k"
kill -9 $K 2>/dev/null
reap $K
RST_K="$FERRY restore -D $T/k"

# 1. The program, libc and the loader as identical copies (another inode,
#    another mtime), bind-mounted over the originals in a mount namespace:
#    what another host has. The process restores there and runs on.
# shellcheck disable=SC2086
restore_fk "program and libraries replaced by copies: restored" with_copies $COPY -- $RST_K
if [ -n "$RP" ]; then
	[ "$(stat -L -c %i /proc/$RP/exe)" != "$(stat -c %i "$BIN")" ] &&
		ok "it runs the copy of the program (another inode)" || fail "it runs the original program"
	now=$(awk -v p="$LIBC" '$6 == p {print $5; exit}' /proc/$RP/maps)
	[ -n "$now" ] && [ "$now" != "$(stat -c %i "$LIBC")" ] &&
		ok "it maps the copy of libc (inode $now)" || fail "libc inode ${now:-none}, the original's $(stat -c %i "$LIBC")"
	runs_on "$RP" "the restored process runs on"
fi
end_fk

# 2. The program with one byte changed, same size, same mtime: refused,
#    named; --file-validation=size accepts it (the byte is in the section
#    headers at the end of the file, which nothing maps).
cp "$BIN" "$T/prog.mod"
sz=$(stat -c %s "$BIN")
printf '\252' | dd of="$T/prog.mod" bs=1 seek=$((sz - 1)) conv=notrunc status=none
cmp -s "$BIN" "$T/prog.mod" && printf '\125' | dd of="$T/prog.mod" bs=1 seek=$((sz - 1)) conv=notrunc status=none
touch -r "$BIN" "$T/prog.mod"
expect_rc 1 "the program with one byte changed (same size, same mtime) is refused" \
	with_mounts "$T/prog.mod:$BIN" -- $RST_K -d
expect_in "$T/err" "\`$BIN\`: content differs" "names the program and says its content differs"
# shellcheck disable=SC2086
restore_fk "... and restored with --file-validation=size" with_mounts "$T/prog.mod:$BIN" -- $RST_K --file-validation=size
[ -n "$RP" ] && runs_on "$RP" "it runs on"
end_fk

# 2b. Another build: a byte of the GNU build-id note changed is refused as
#     that, before any content is read.
cp "$BIN" "$T/prog.bid"
if python3 - "$T/prog.bid" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
i = b.find(b'\x04\x00\x00\x00\x14\x00\x00\x00\x03\x00\x00\x00GNU\x00')
if i < 0:
    sys.exit(1)
b[i + 16] ^= 0xff
open(p, 'wb').write(b)
PY
then
	expect_rc 1 "another build-id is refused" with_mounts "$T/prog.bid:$BIN" -- $RST_K -d
	expect_in "$T/err" "\`$BIN\`: build-id differs" "says the build-id differs"
else
	skip_case "build-id: $BIN has no 20-byte GNU build-id note"
fi

# 3. The directory fd's directory gained an entry, the O_APPEND log grew:
#    both restore (content mode), and the process sees both.
touch "$T/fk/sub/new-after-dump"
echo "appended after the dump" >>"$T/fk/log"
restore_fk "a directory with a new file and a grown O_APPEND log: restored" $RST_K
if [ -n "$RP" ]; then
	runs_on "$RP" "it runs on"
	case $FKC in *entries=1*) ok "it sees the new file through its directory fd" ;; *) fail "entries: $FKC" ;; esac
fi
end_fk
grep -q '^tick' "$T/fk/log" && ok "it appended to its log" || fail "nothing appended to the log"

# 3b. The log's dumped part changed: refused.
cp "$T/fk/log" "$T/log.keep"
printf 'S' | dd of="$T/fk/log" bs=1 seek=0 conv=notrunc status=none
expect_rc 1 "an O_APPEND log whose dumped part changed is refused" $RST_K -d
expect_in "$T/err" "log\`: content differs in the part it had when dumped" "says so, naming the log"
cp "$T/log.keep" "$T/fk/log"

# 4. The read-only data file grew: refused by content and size, accepted by
#    none (which checks only that it exists and is a regular file).
printf 'z' >>"$T/fk/data"
expect_rc 1 "a data file one byte larger is refused" $RST_K -d
expect_in "$T/err" "data\`: size 4096 then, 4097 now" "names it with both sizes"
expect_rc 1 "... also by --file-validation=size" $RST_K -d --file-validation=size
restore_fk "... and restored with --file-validation=none" $RST_K --file-validation=none
[ -n "$RP" ] && runs_on "$RP" "it runs on"
end_fk
truncate -s 4096 "$T/fk/data"

# 5. A regular file that is a directory now is refused in every mode.
mv "$T/fk/data" "$T/data.keep"
mkdir "$T/fk/data"
for m in content size none; do
	expect_rc 1 "a file that is a directory now is refused (--file-validation=$m)" \
		$RST_K -d --file-validation=$m
	expect_in "$T/err" "data\` was a regular file when dumped, it is a directory now" "says what it was and is"
done
rmdir "$T/fk/data" && mv "$T/data.keep" "$T/fk/data"
expect_rc 2 "an unknown --file-validation is a usage error" $RST_K --file-validation=inode
restore_fk "all back as dumped: restored" $RST_K
[ -n "$RP" ] && runs_on "$RP" "it runs on"
end_fk
finish
