#!/bin/sh
# Dump throughput to tmpfs, GB/s of the target's resident memory (VmRSS),
# median of 3 runs (5 from 4 GiB on), after one unmeasured run: ferry dump (auto backends, and the forced fallbacks)
# against the naive process_vm_readv+write baseline, gcore, and CRIU where
# `criu check` passes on this kernel; and the floor under all of them:
# writing as many bytes into one tmpfs file from a buffer in cache, reading
# nothing (bench/write_floor.c), by one thread and by two.
set -eu
B=${BUILD:-build}
SIZES=${BENCH_DUMP_MB:-"256 1024 4096"}
RUNS=3
D=/tmp/ferry-bench
mkdir -p $D
mountpoint -q $D || mount -t tmpfs -o size=14g tmpfs $D
# set -e applies inside the trap too: every command here must succeed.
trap 'pkill -f "$D/w.desc" 2>/dev/null || true; umount $D 2>/dev/null || rm -rf $D/* || true' EXIT

ns() { date +%s%N; }
# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
row() { printf '%-28s %-22s %12s %12s\n' "$1" "$2" "$3" "$4"; }

# This VM backs guest memory lazily: the first touch of a guest page is
# slow, and a fresh tmpfs file draws on such pages at random. Touch 12 GiB of
# tmpfs once so that no method pays for it inside a measurement. Sizes of
# 4 GiB and more also get 5 runs: what remains of the effect shows there.
dd if=/dev/zero of=$D/pretouch bs=1M count=13312 status=none 2>/dev/null || true
rm -f $D/pretouch

have_criu=0
command -v criu >/dev/null && criu check >/dev/null 2>&1 && have_criu=1

for mb in $SIZES; do
	rm -f $D/w.desc
	setsid "$B/tests/workloads/memtest" $D/w.desc --mb "$mb" </dev/null >/dev/null 2>&1 &
	while [ ! -e $D/w.desc ]; do sleep 0.1; done
	P=$(pgrep -f "$D/w.desc" | head -1)
	rss=$(awk '/VmRSS/ {printf "%d", $2 * 1024}' /proc/$P/status)
	size="${mb} MiB"
	runs=$RUNS
	[ "$mb" -ge 4096 ] && runs=5
	rate() { awk -v b="$rss" -v t="$1" 'BEGIN {printf "%.2f GB/s", b / (t / 1e9) / 1e9}'; }

	# The methods' runs interleave (one run of each in turn, RUNS times), so
	# that drift of this VM over a minute hits every method alike; each
	# gets one unmeasured run first (fresh guest memory is slow to touch).
	set -- "ferry dump -R|$B/ferry dump -t $P -D $D/img -R" \
		"ferry maps+pagemap|$B/ferry dump -t $P -D $D/img -R --layout maps --pages pagemap" \
		"naive readv+write|$B/bench/naive_dump $P $D/img/naive" \
		"floor: write, 1 thread|$B/bench/write_floor $D/img/floor $rss 1" \
		"floor: write, 2 threads|$B/bench/write_floor $D/img/floor $rss 2"
	# FERRY_BASELINE=path/to/an/older/ferry adds its row, to compare builds in one run.
	[ -n "${FERRY_BASELINE:-}" ] && set -- "$@" "ferry baseline build|$FERRY_BASELINE dump -t $P -D $D/img -R"
	[ $have_criu = 1 ] && set -- "$@" "criu dump -R|criu dump -t $P -D $D/img --leave-running"
	for r in $(seq 0 "$runs"); do
		i=0
		for m in "$@"; do
			i=$((i + 1))
			rm -rf $D/img; mkdir -p $D/img
			t0=$(ns); ${m#*|} >/dev/null 2>&1 || echo failed >>$D/t.$i; t1=$(ns)
			[ "$r" = 0 ] || echo $((t1 - t0)) >>$D/t.$i
		done
	done
	i=0
	for m in "$@"; do
		i=$((i + 1))
		if grep -q failed $D/t.$i; then
			row "dump to tmpfs" "${m%%|*}" "$size" failed
		else
			row "dump to tmpfs" "${m%%|*}" "$size" "$(rate "$(median <$D/t.$i)")"
		fi
		rm -f $D/t.$i
	done
	# gcore writes every mapping; one run is enough to place it.
	rm -rf $D/img; mkdir -p $D/img
	t0=$(ns); gcore -o $D/img/core "$P" >/dev/null 2>&1 && t1=$(ns) &&
		row "dump to tmpfs" "gcore (1 run)" "$size" "$(rate $((t1 - t0)))" ||
		row "dump to tmpfs" "gcore" "$size" failed
	rm -rf $D/img
	kill -9 "$P"
done
[ $have_criu = 1 ] || row "dump to tmpfs" "criu dump -R" "-" "criu check fails here"
:
