#!/bin/sh
# Seeds for tests/fuzz/fuzz_restore.c: real dumps, made here with the built
# ferry and packed by tests/fuzz/pack.py, each reaching a different part of
# the restore:
#   sleep    one thread; fds on /dev/null, a file read, a file written with
#            O_APPEND (in WORK: writable in the fuzzer) and a directory
#   creds    sleep run as nobody with no groups: the restore sets
#            credentials
#   chain    a pre-dump and the dump on top of it (pages in the parent)
#   tree     tests/workloads/treecheck's tree of five (tree.img, pid-PID/
#            directories, a pipe, socketpairs with data queued, shared
#            memory, a zombie)
#   fdkinds  tests/workloads/fdcheck: eventfd, timerfd, signalfd, epoll,
#            inotify, a memfd and a deleted file (fdata.img)
# plus a synthetic image from tests/tools/mkimage. The files the seeds'
# fds name stay in WORK/files (the fuzzer's FERRY_FUZZ_DIR) for the run.
# usage: restore_seeds.sh BUILD SEEDS_DIR WORK_DIR   (as root)
set -eu
B=$(cd "$1" && pwd) # the workloads run in /
OUT=$2
WORK=$3
FERRY=$B/ferry
T=$(mktemp -d)
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null || true; done; rm -rf "$T"' EXIT
mkdir -p "$OUT" "$WORK"
WORK=$(cd "$WORK" && pwd) # the workloads run in /
rm -rf "$WORK/files"
mkdir -p "$WORK/files"
echo "read me" >"$WORK/files/in"
# Workloads dump with no core limit left to restore, and away from WORK.
ulimit -Sc 0

# started PID EXE: wait until PID runs EXE (not the shell's fork of it).
started() {
	for _ in $(seq 100); do
		[ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$2" ] && return 0
		sleep 0.05
	done
	echo "restore_seeds: $2 did not start" >&2
	return 1
}

dump() { # DIR PID [ferry dump args]
	d=$1 p=$2
	shift 2
	"$FERRY" -q dump -t "$p" -D "$d" --skip-unsupported-fds "$@" >/dev/null
}

SLEEP=$(readlink -f "$(command -v sleep)")

# sleep, with fds of every kind the restore re-opens
(cd / && exec sleep 1000 <"$WORK/files/in" >>"$WORK/files/out" 2>/dev/null 3<"$WORK/files") &
P=$!
PIDS="$PIDS $P"
started $P "$SLEEP"
dump "$T/sleep" $P
python3 tests/fuzz/pack.py "$T/sleep" "$OUT/sleep"

# sleep as nobody with no groups: other credentials to set
(cd / && exec setpriv --reuid=65534 --regid=65534 --clear-groups \
	sleep 1000 </dev/null >/dev/null 2>&1) &
P=$!
PIDS="$PIDS $P"
started $P "$SLEEP"
dump "$T/creds" $P
python3 tests/fuzz/pack.py "$T/creds" "$OUT/creds"

# a pre-dump, then the final dump on top of it
(cd / && exec sleep 1000 </dev/null >/dev/null 2>&1) &
P=$!
PIDS="$PIDS $P"
started $P "$SLEEP"
mkdir -p "$T/chain"
"$FERRY" -q pre-dump -t $P -D "$T/chain/p" >/dev/null
dump "$T/chain" $P --prev-images-dir p
python3 tests/fuzz/pack.py "$T/chain" "$OUT/chain"

# a tree (daemonized: it is no child of this shell)
(cd / && exec "$B/tests/workloads/treecheck" "$WORK/files/tc" </dev/null >"$T/tc.root" 2>/dev/null)
for _ in $(seq 100); do [ -s "$WORK/files/tc.pids" ] && break; sleep 0.05; done
PIDS="$PIDS $(cat "$WORK/files/tc.pids")"
P=$(cat "$T/tc.root")
sleep 0.2
dump "$T/tree" $P
python3 tests/fuzz/pack.py "$T/tree" "$OUT/tree"

# fds of every kind that is a kernel object of one process
mkdir -p "$WORK/files/fd"
(cd / && exec "$B/tests/workloads/fdcheck" "$WORK/files/fd" </dev/null >/dev/null 2>&1) &
P=$!
PIDS="$PIDS $P"
for _ in $(seq 100); do [ -s "$WORK/files/fd/ready" ] && break; sleep 0.05; done
dump "$T/fdkinds" $P
python3 tests/fuzz/pack.py "$T/fdkinds" "$OUT/fdkinds"

"$B/tests/tools/mkimage" "$T/synthetic" --pages 8 >/dev/null
python3 tests/fuzz/pack.py "$T/synthetic" "$OUT/synthetic"
