#!/bin/sh
# Process trees: a parent with 256 MiB of private memory and 3 children that
# share it copy-on-write (tests/workloads/forktree). Dump and restore time,
# and the tree's memory (the sum of the processes' Pss, and the machine's
# used memory) before the dump and after the restore: ferry restores each
# process's private pages on their own (docs/ARCHITECTURE.md, "Process trees").
# Then the restored tree pre-copied: how long the final dump freezes it on
# top of a pre-dump, beside the plain dump's freeze, in the same run.
set -eu
B=${BUILD:-build}
MB=${BENCH_TREE_MB:-256}
D=$(mktemp -d /dev/shm/ferry-bench-tree-XXXXXX)
trap 'pkill -9 -x forktree 2>/dev/null || true; rm -rf $D' EXIT
row() { printf '%-28s %-22s %12s %12s\n' "$1" "$2" "$3" "$4"; }
ns() { date +%s%N; }
pss() {
	t=0
	for p in $(pgrep -x forktree); do
		v=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null || echo 0)
		t=$((t + v))
	done
	echo $((t / 1024))
}
R=$("$B/tests/workloads/forktree" $MB 3)
sleep 1
row "tree memory (4 processes)" "before dump: Pss" "${MB} MiB" "$(pss) MiB"
t0=$(ns)
"$B/ferry" dump -t $R -D $D/d >$D/dump.out 2>&1
t1=$(ns)
row "tree dump" "4 processes" "${MB} MiB" "$(( (t1 - t0) / 1000000 )) ms"
while [ -d /proc/$R ] && ! grep -q '^State:.*Z' /proc/$R/status 2>/dev/null; do sleep 0.05; done
sleep 0.5
# The restore without keeping the shared memory shared (the path taken
# when there is no room for it), then as it is.
t0=$(ns)
FERRY_FAULT=restore-no-cow "$B/ferry" restore -D $D/d -d >/dev/null 2>&1
t1=$(ns)
row "tree restore" "not shared (FERRY_FAULT)" "${MB} MiB" "$(( (t1 - t0) / 1000000 )) ms"
sleep 0.5
row "tree memory (4 processes)" "after it: Pss" "${MB} MiB" "$(pss) MiB"
pkill -9 -x forktree
while [ -d /proc/$R ]; do sleep 0.05; done
sleep 0.5
t0=$(ns)
"$B/ferry" restore -D $D/d -d >/dev/null 2>&1
t1=$(ns)
row "tree restore" "shared copy-on-write" "${MB} MiB" "$(( (t1 - t0) / 1000000 )) ms"
sleep 0.5
row "tree memory (4 processes)" "after it: Pss" "${MB} MiB" "$(pss) MiB"

# frozen FILE: the freeze a dump reported ("frozen 0.123 s"), in ms.
frozen() { sed -n 's/.*frozen \([0-9.]*\) s.*/\1/p' "$1" | awk '{printf "%d ms", $1 * 1000}'; }
row "tree dump, frozen" "plain" "${MB} MiB" "$(frozen $D/dump.out)"
"$B/ferry" pre-dump -t $R -D $D/p1 >/dev/null 2>&1
"$B/ferry" dump -t $R -D $D/f --prev-images-dir ../p1 >$D/final.out 2>&1
row "tree dump, frozen" "on top of a pre-dump" "${MB} MiB" "$(frozen $D/final.out)"
