#!/bin/sh
# Restore from tmpfs: time from `ferry restore -d` starting to the restored
# process running (the command returns only then), and throughput as the
# dumped bytes over that time; median of 3 runs after one unmeasured run.
# The time includes validation (every page checksum, every backing file).
# CRIU's restore of the same workload (dumped by CRIU) is measured where
# `criu check` passes: Debian 12's CRIU 3.17 does not on Linux 6.18, a build
# of CRIU v4.2 from source does (docs/PERFORMANCE.md).
set -eu
B=${BUILD:-build}
SIZES=${BENCH_RESTORE_MB:-"1024 4096"}
RUNS=3
D=/tmp/ferry-bench-rst
mkdir -p $D
mountpoint -q $D || mount -t tmpfs -o size=14g tmpfs $D
trap 'pkill -9 -f "$D/w.desc" 2>/dev/null || true; umount $D 2>/dev/null || rm -rf $D/* || true' EXIT

ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
row() { printf '%-28s %-22s %12s %12s\n' "$1" "$2" "$3" "$4"; }
gone() { ! [ -d /proc/$1 ] || grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; }

# This VM backs guest memory lazily: touch 12 GiB once (as b_dump.sh does) so
# that no restore pays for first touches inside a measurement.
dd if=/dev/zero of=$D/pretouch bs=1M count=12288 status=none 2>/dev/null || true
rm -f $D/pretouch

have_criu=0
command -v criu >/dev/null && criu check >/dev/null 2>&1 && have_criu=1

# restores LABEL BYTES CMD...: time CMD (a detached restore) RUNS times after
# one unmeasured run, killing and reaping the restored process after each.
# `ferry restore -d` prints the PID; `criu restore -d` restores the dumped one.
restores() {
	label=$1; bytes=$2; shift 2
	rm -f $D/failed
	for i in 0 $(seq $RUNS); do
		t0=$(ns)
		R=$("$@" 2>/dev/null) || { touch $D/failed; continue; }
		t1=$(ns)
		R=${R:-$P}
		kill -9 "$R"
		for _ in $(seq 200); do gone "$R" && break; sleep 0.05; done
		[ "$i" -gt 0 ] && echo $((t1 - t0))
	done | median >$D/t
	if [ -e $D/failed ]; then
		row "restore from tmpfs" "$label" "$size" failed
		return
	fi
	t=$(cat $D/t)
	row "restore from tmpfs" "$label: to running" "$size" "$(awk -v t="$t" 'BEGIN {printf "%.3f s", t / 1e9}')"
	row "restore from tmpfs" "$label: throughput" "$size" "$(awk -v b="$bytes" -v t="$t" 'BEGIN {printf "%.2f GB/s", b / (t / 1e9) / 1e9}')"
}

# start_workload MB: a fresh memtest of MB MiB; P gets its PID.
start_workload() {
	rm -rf $D/w.desc $D/img
	setsid "$B/tests/workloads/memtest" $D/w.desc --mb "$1" </dev/null >/dev/null 2>&1 &
	while [ ! -e $D/w.desc ]; do sleep 0.1; done
	P=$(pgrep -f "$D/w.desc" | head -1)
	mkdir -p $D/img
}

for mb in $SIZES; do
	size="${mb} MiB"
	start_workload "$mb"
	"$B/ferry" dump -t "$P" -D $D/img >/dev/null
	for _ in $(seq 100); do gone "$P" && break; sleep 0.05; done
	restores ferry "$(du -sb $D/img/pages.img | cut -f1)" "$B/ferry" restore -D $D/img -d
	[ $have_criu = 1 ] || continue
	# The same workload dumped by CRIU, restored by CRIU the same way.
	start_workload "$mb"
	if ! criu dump -t "$P" -D $D/img >/dev/null 2>&1; then
		row "restore from tmpfs" "criu restore -d" "$size" "dump failed"
		kill -9 "$P"
		continue
	fi
	for _ in $(seq 100); do gone "$P" && break; sleep 0.05; done
	restores criu "$(du -cb $D/img/pages-*.img | tail -1 | cut -f1)" criu restore -d -D $D/img
done
rm -rf $D/img
[ $have_criu = 1 ] || row "restore from tmpfs" "criu restore" "-" "criu check fails here"
