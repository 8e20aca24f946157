#!/bin/sh
# Restore's validation before it creates anything (restore/validate.c): a
# real dump passes; a changed or replaced backing file, a corrupt page and a
# pre-dump are each refused with a message that names them.
. "$(dirname "$0")/lib.sh"
RST="$TOOLS/tools/rstcheck"
"$TOOLS/workloads/memtest" "$T/w.desc" --mb 2 </dev/null >/dev/null 2>&1 &
W=$!
trap 'kill -9 $W 2>/dev/null; rm -rf "$T"' EXIT
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
expect_rc 1 "a mapped file that changed is refused" "$RST" "$T/d"
expect_in "$T/err" "w.desc.file\` changed since the dump" "names the changed file"
rm "$T/w.desc.file" && cp "$T/keep" "$T/w.desc.file"
expect_rc 1 "a mapped file replaced by an identical copy is refused" "$RST" "$T/d"
expect_in "$T/err" "is another file than at dump time" "says it is another file"

"$TOOLS/tools/mkimage" "$T/pre" --kind pre >/dev/null
expect_rc 1 "a pre-dump is not restorable" "$RST" "$T/pre"
expect_in "$T/err" "is a pre-dump" "says to restore the final dump"
finish
