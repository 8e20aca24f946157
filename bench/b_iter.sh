#!/bin/sh
# Iterative pre-dump against one frozen dump, as the workload itself sees it:
# tests/workloads/dirtier (1 GiB, writing random pages at R MB/s) records the
# largest gap between two turns of its own loop; that gap while ferry dumps
# it with --leave-running is the freeze it felt. Also total time and bytes,
# per tracker, and the tracker's cost: the workload's own work rate (a busy
# loop between its writes) untracked and with uffd-wp tracking armed.
# Images go to tmpfs. Every number is the median of RUNS runs.
set -eu
B=${BUILD:-build}
MB=${BENCH_ITER_MB:-1024}
RATES=${BENCH_ITER_RATES:-"0 16 32 64 256"}
RUNS=${BENCH_ITER_RUNS:-3}
D=/tmp/ferry-bench-iter
mkdir -p $D
mountpoint -q $D || mount -t tmpfs -o size=8g tmpfs $D
trap 'pkill -9 -f "$D/ctl" 2>/dev/null || true; umount $D 2>/dev/null || rm -rf $D/* || true' EXIT

row() { printf '%-28s %-22s %12s %12s\n' "$1" "$2" "$3" "$4"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ns() { date +%s%N; }

# start R [--busy]: a fresh dirtier; P gets its PID.
start() {
	rate=$1; shift
	pkill -9 -f "$D/ctl" 2>/dev/null || true
	rm -rf $D/ctl.* $D/img
	setsid "$B/tests/workloads/dirtier" $D/ctl --mb "$MB" --rate "$rate" "$@" </dev/null >/dev/null 2>&1 &
	while [ ! -s $D/ctl.ready ]; do sleep 0.1; done
	P=$(awk '{print $1}' $D/ctl.ready)
	sleep 1
}

# stats KEY: ask the workload for its stats (and restart them); print KEY's value.
stats() {
	rm -f $D/ctl.stats
	kill -USR2 "$P"
	while [ ! -s $D/ctl.stats ]; do sleep 0.02; done
	awk -v k="$1" '$1 == k {print $2}' $D/ctl.stats
}

# measure LABEL RATE CMD...: run CMD (a dump with -R; `{pid}` stands for the
# workload's PID) RUNS times on a fresh workload; rows of the median freeze
# seen, total time and (from ferry's --json) bytes copied.
measure() {
	label=$1; rate=$2; shift 2
	start "$rate"
	: >$D/gaps; : >$D/times; : >$D/bytes; : >$D/rounds
	for _ in $(seq "$RUNS"); do
		rm -rf $D/img
		mkdir $D/img # criu wants it to exist
		stats max_gap_ns >/dev/null
		t0=$(ns)
		for a; do shift; [ "$a" = "{pid}" ] && a=$P; set -- "$@" "$a"; done
		"$@" >$D/out 2>$D/err || { row "pre-dump 1 GiB @${rate}MB/s" "$label" "$MB MiB" failed; cat $D/err >&2; return; }
		t1=$(ns)
		stats max_gap_ns >>$D/gaps
		echo $((t1 - t0)) >>$D/times
		# Back to the placeholder for the next run's fresh substitution.
		for a; do shift; [ "$a" = "$P" ] && a="{pid}"; set -- "$@" "$a"; done
		# The iterative summary has total_bytes; a single dump has bytes.
		sed -n 's/.*"total_bytes":\([0-9]*\).*/\1/p; t; s/.*"bytes":\([0-9]*\).*/\1/p' $D/out | head -1 >>$D/bytes
		grep -o '"round":' $D/out | wc -l >>$D/rounds
	done
	gap=$(median <$D/gaps)
	t=$(median <$D/times)
	by=$(median <$D/bytes)
	rd=$(median <$D/rounds)
	row "pre-dump 1 GiB @${rate}MB/s" "$label: freeze seen" "$MB MiB" "$(awk -v g="$gap" 'BEGIN {printf "%.1f ms", g / 1e6}')"
	row "pre-dump 1 GiB @${rate}MB/s" "$label: total" "$MB MiB" "$(awk -v t="$t" 'BEGIN {printf "%.3f s", t / 1e9}')"
	if [ -n "$by" ]; then
		row "pre-dump 1 GiB @${rate}MB/s" "$label: copied" "$MB MiB" "$(awk -v b="$by" -v r="$rd" 'BEGIN {printf "%.0f MiB%s", b / 1048576, (r > 0 ? " (" r " rds)" : "")}')"
	fi
}

have_criu=0
command -v criu >/dev/null && criu check >/dev/null 2>&1 && have_criu=1
for rate in $RATES; do
	measure "one frozen dump" "$rate" "$B/ferry" dump -R -D $D/img -t {pid} --json
	for tr in uffd-wp hash; do
		measure "iterative $tr" "$rate" "$B/ferry" dump --iterative -R --track $tr -D $D/img -t {pid} --json
	done
	# CRIU cannot pre-dump here (no soft-dirty): its frozen dump is the comparison.
	[ $have_criu = 1 ] && measure "criu dump -R" "$rate" criu dump -t {pid} -D $D/img --leave-running
done
[ $have_criu = 1 ] || row "pre-dump 1 GiB" "criu dump -R" "-" "criu check fails here"

# The tracker's cost: the workload's work rate over 3 s, untracked, then
# with uffd-wp armed by a pre-dump whose keeper holds the tracking.
start 32 --busy
: >$D/free; : >$D/tracked
keeper() { pgrep -f "ferry pre-dump --track uffd-wp -t $P " || true; }
for _ in $(seq "$RUNS"); do
	stats work_per_s >/dev/null
	sleep 3
	stats work_per_s >>$D/free
	rm -rf $D/img
	"$B/ferry" pre-dump --track uffd-wp -t "$P" -D $D/img >/dev/null
	stats work_per_s >/dev/null
	sleep 3
	stats work_per_s >>$D/tracked
	# Ending the keeper ends the tracking (its fd was the last reference).
	kill $(keeper) 2>/dev/null || true
	while [ -n "$(keeper)" ]; do sleep 0.05; done
done
free=$(median <$D/free)
tracked=$(median <$D/tracked)
row "tracker cost @32MB/s" "untracked: work/s" "$MB MiB" "$(awk -v v="$free" 'BEGIN {printf "%.3g", v}')"
row "tracker cost @32MB/s" "uffd-wp armed: work/s" "$MB MiB" "$(awk -v v="$tracked" 'BEGIN {printf "%.3g", v}')"
row "tracker cost @32MB/s" "tracked / untracked" "$MB MiB" "$(awk -v a="$tracked" -v b="$free" 'BEGIN {printf "%.1f %%", 100 * a / b}')"
