#!/bin/sh
# ferry show on generated image chains: text, --json, --verify, and refusals
# of incomplete and corrupt directories.
. "$(dirname "$0")/lib.sh"
M="$TOOLS/tools/mkimage"

"$M" "$T/p" --kind pre --pages 64 || fail "mkimage parent"
"$M" "$T/c" --parent ../p --gen 2 --pages 64 || fail "mkimage child"

expect_rc 0 "show a dump with a parent" "$FERRY" show "$T/c"
expect_in "$T/out" "7f0000000000-7f0000040000 rw-p 00000000 00:00 0" "VMA printed as /proc/PID/maps does"
expect_in "$T/out" "[stack]" "special mapping named"
expect_in "$T/out" "chain:     $T/c -> $T/c/../p (pre-dump)" "parent chain shown"
expect_in "$T/out" "data 38, in parent 32, zero 2" "pagemap summary"
expect_in "$T/out" "pid 4242, ppid 1" "process shown"

expect_rc 0 "show --json" "$FERRY" show --json "$T/c"
python3 - "$T/out" <<'PY' || fail "show --json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["kind"] == "dump" and d["root_pid"] == 4242, d
assert [c["kind"] for c in d["chain"]] == ["pre-dump"], d["chain"]
assert d["pagemap"] == {"runs": 4, "pages": 72, "data_pages": 38, "parent_pages": 32,
                        "zero_pages": 2}, d["pagemap"]
assert len(d["vmas"]) == 3 and d["process"]["threads"] == [4242, 4243]
PY

expect_rc 0 "show --verify on intact chain" "$FERRY" show --verify "$T/c"
expect_in "$T/out" "verify:    ok: 4 runs" "verify reports runs through the chain"

# One flipped byte in the parent's pages: verify must fail and name the run.
printf '\377' | dd of="$T/p/pages.img" bs=1 seek=$((4096 + 100)) conv=notrunc status=none
expect_rc 1 "verify fails on a corrupted parent page" "$FERRY" show --verify "$T/c"
expect_in "$T/err" "checksum mismatch" "verify names the mismatch"
expect_rc 0 "show without --verify still reads the corrupted chain" "$FERRY" show "$T/c"
expect_rc 1 "show --json --verify fails too" "$FERRY" show --json --verify "$T/c"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['verify']['ok'] is False and d['verify']['bad_runs']==1" "$T/out" \
	|| fail "json verify result"

rm "$T/p/inventory.img"
expect_rc 1 "a chain whose parent is incomplete is refused" "$FERRY" show "$T/c"
expect_in "$T/err" "incomplete" "refusal says incomplete"

"$M" "$T/t" --pages 16 || fail "mkimage"
truncate -s 100 "$T/t/pagemap.img"
expect_rc 1 "truncated pagemap refused" "$FERRY" show "$T/t"
expect_in "$T/err" "pagemap.img: size 100" "refusal names the file and the size"

expect_rc 1 "not an image directory" "$FERRY" show /
expect_rc 2 "no directory given" "$FERRY" show
expect_rc 2 "unknown option" "$FERRY" show --frobnicate "$T/c"
expect_rc 0 "ferry --help" "$FERRY" --help
expect_in "$T/out" "show" "--help lists show"
expect_rc 2 "unknown command" "$FERRY" frobnicate
expect_rc 0 "ferry show --help" "$FERRY" show --help
finish
