#!/bin/sh
# ferryd, the service (docs/RPC.md): what going through it costs, and what
# running jobs side by side gives. Targets: tests/workloads/dirtier, N MiB
# each (BENCH_FERRYD_MB, default 256), idle (no writes). Images on
# /dev/shm. Rows, median of 3 runs each:
#   - one dump -R, directly and through `ferry --connect` (the overhead);
#   - 8 dumps -R one after the other, and 8 at once through the service
#     (aggregate MiB/s over the wall time of the whole set);
#   - 7 dumps -R at once, alone and beside a dump 8 times their size
#     started just before them: one slow job holds the others up only by
#     the CPU and memory bandwidth it takes (median of 3 each; the big
#     one's own time after the slash).
set -eu
B=${BUILD:-build}
MB=${BENCH_FERRYD_MB:-256}
N=8
D=$(mktemp -d /dev/shm/ferry-bench-ferryd-XXXXXX)
S=$D/ferryd.sock
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf $D' EXIT
row() { printf '%-28s %-22s %12s %12s\n' "$1" "$2" "$3" "$4"; }
ns() { date +%s%N; }
median() { sort -n | sed -n 2p; }

"$B/ferryd" --socket "$S" --foreground --ferry "$B/ferry" 2>"$D/ferryd.log" &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.05; done
T=""
for k in $(seq $N); do
	"$B/tests/workloads/dirtier" "$D/w$k" --mb "$MB" --rate 0 </dev/null >/dev/null 2>&1 &
	PIDS="$PIDS $!"
	T="$T $!"
done
for k in $(seq $N); do
	for _ in $(seq 400); do [ -s "$D/w$k.ready" ] && break; sleep 0.05; done
done
first=$(echo $T | cut -d' ' -f1)

# one WAY: ms of one dump -R of the first target, WAY "direct" or "service".
one() {
	rm -rf "$D/one"
	t0=$(ns)
	if [ "$1" = direct ]; then
		"$B/ferry" dump -t $first -D "$D/one" -R >/dev/null 2>&1
	else
		"$B/ferry" --connect "$S" dump -t $first -D "$D/one" -R >/dev/null 2>&1
	fi
	echo $(( ($(ns) - t0) / 1000000 ))
}
one direct >/dev/null
for way in direct service; do
	ms=$(for _ in 1 2 3; do one $way; done | median)
	row "ferryd: one dump -R" "$way" "$MB MiB" "$ms ms"
done

# set WAY: ms for all N targets dumped, one after the other or at once.
set_of() {
	rm -rf "$D"/set*
	t0=$(ns)
	k=0
	for p in $T; do
		k=$((k + 1))
		if [ "$1" = sequential ]; then
			"$B/ferry" --connect "$S" dump -t $p -D "$D/set$k" -R >/dev/null 2>&1
		else
			"$B/ferry" --connect "$S" dump -t $p -D "$D/set$k" -R >/dev/null 2>&1 &
		fi
	done
	wait
	echo $(( ($(ns) - t0) / 1000000 ))
}
for way in sequential concurrent; do
	ms=$(for _ in 1 2 3; do set_of $way; done | median)
	row "ferryd: $N dumps -R" "$way" "$N x $MB MiB" \
		"$(awk -v mb=$((N * MB)) -v ms=$ms 'BEGIN {printf "%.0f MiB/s", mb / (ms / 1000)}')"
done
rm -rf "$D"/set* "$D/one"

# A target slow to dump among the others: 7 of the targets dumped at once,
# alone, and beside one 8 times their size whose dump starts first. The
# 7's wall time (the big one's after the slash).
"$B/tests/workloads/dirtier" "$D/big" --mb $((MB * 8)) --rate 0 </dev/null >/dev/null 2>&1 &
BIG=$!
PIDS="$PIDS $BIG"
for _ in $(seq 1200); do [ -s "$D/big.ready" ] && break; sleep 0.05; done
SEVEN=$(echo $T | cut -d' ' -f2-)
seven() {
	rm -rf "$D"/seven* "$D/bigimg"
	if [ "$1" = beside ]; then
		"$B/ferry" --connect "$S" dump -t $BIG -D "$D/bigimg" -R >/dev/null 2>&1 &
		bj=$!
		sleep 0.1
	fi
	t0=$(ns)
	k=0 w=""
	for p in $SEVEN; do
		k=$((k + 1))
		"$B/ferry" --connect "$S" dump -t $p -D "$D/seven$k" -R >/dev/null 2>&1 &
		w="$w $!"
	done
	# shellcheck disable=SC2086
	wait $w
	ms=$(( ($(ns) - t0) / 1000000 ))
	if [ "$1" = beside ]; then
		wait $bj
		echo "$ms ms / $(( ($(ns) - t0) / 1000000 + 100 )) ms"
	else
		echo "$ms ms"
	fi
}
# Median of 3, the two ways in turn (the first run after the big target
# filled its memory is the slowest either way).
for _ in 1 2 3; do
	seven alone >>"$D/alone.ms"
	seven beside >>"$D/beside.ms"
done
row "ferryd: 7 dumps -R at once" "alone" "7 x $MB MiB" "$(sort -n "$D/alone.ms" | sed -n 2p)"
row "ferryd: 7 dumps -R at once" "beside a $((MB * 8)) MiB dump" "7 x $MB MiB" \
	"$(sort -n "$D/beside.ms" | sed -n 2p)"
rm -rf "$D"/seven* "$D/bigimg"
