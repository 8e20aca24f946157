#!/bin/sh
# Content checksums of the files behind a process (proc/filesum.c): the
# build-id and XXH3-128 a dump records for the program and every library it
# maps, so that a restore on another host knows them by content. Measured on
# two real sets: the test workload's (program, libc, loader) and a python3
# that imported a few common modules (its mapped files); cold (page cache
# dropped: the first dump after boot) and warm (median of 5). A dump reads
# each file once, reuses a parent round's checksums, and does this before
# its freeze; restore reads each file once.
set -eu
B=${BUILD:-build}
. "$(dirname "$0")/../scripts/copies.sh"
D=$(mktemp -d /tmp/ferry-bench-fsum-XXXXXX)
PY=""
trap '[ -n "$PY" ] && kill -9 $PY 2>/dev/null; rm -rf "$D"' EXIT
row() { printf '%-28s %-22s %12s %12s\n' "$1" "$2" "$3" "$4"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# measure LABEL: the files in $D/list, cold then warm.
measure() {
	# shellcheck disable=SC2046
	set -- $(cat "$D/list")
	n=$#
	mib=$(du -cbL "$@" | awk 'END {printf "%.1f MiB", $1 / 1048576}')
	if sync && echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
		ns=$("$B/bench/filesum_bench" "$@" | sed 's/.*ns=//')
		row "file checksums ($n files)" "$LABEL: cold" "$mib" "$(awk -v t="$ns" 'BEGIN {printf "%.1f ms", t / 1e6}')"
	else
		row "file checksums ($n files)" "$LABEL: cold" "$mib" "skipped"
	fi
	for _ in 1 2 3 4 5 6; do "$B/bench/filesum_bench" "$@" | sed 's/.*ns=//'; done | tail -5 | median >"$D/t"
	row "file checksums ($n files)" "$LABEL: warm" "$mib" "$(awk -v t="$(cat "$D/t")" 'BEGIN {printf "%.1f ms", t / 1e6}')"
}

program_files "$B/tests/workloads/dirtier" >"$D/list"
LABEL="workload+libc" measure

if command -v python3 >/dev/null; then
	python3 -c 'import ssl, json, sqlite3, decimal, hashlib, ctypes, time; time.sleep(600)' &
	PY=$!
	sleep 1
	awk '$6 ~ /^\// && NF == 6 {print $6}' /proc/$PY/maps | sort -u >"$D/list"
	LABEL="python3 (ssl, sqlite3...)" measure
else
	row "file checksums" "python3" "-" "skipped: no python3"
fi
