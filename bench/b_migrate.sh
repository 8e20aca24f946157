#!/bin/sh
# Live migration of tests/workloads/dirtier (1 GiB writing random pages at
# 32 MB/s) across a veth pair between two network namespaces, as the
# workload itself sees it: the largest gap in its own loop (the downtime
# it felt, on the source then the destination), total time, bytes on the
# wire. Rows: the destination building the process while rounds arrive
# (warm, the default) or only at the end (--cold); the frozen final round's
# pages sent from a buffer (the default) or through a pipe the target
# vmsplices into, spliced into the socket (--reader vmsplice); zstd on the
# wire (--compress). Then the same two data paths for a whole frozen dump
# sent to the page server (`dump --page-server -R`), where every page goes
# the one way or the other. Every connection is TLS 1.3 (PSK); the rows
# marked "plaintext" run the last ferry whose stream was not encrypted
# (commit $PLAIN_REV, built into /tmp once) on both ends, the same workload
# and path, for the cost of TLS side by side. Every number is the median of
# RUNS runs; the runs of the rows interleave, so that drift of the machine
# hits all alike.
set -eu
B=$(cd "${BUILD:-build}" && pwd)
MB=${BENCH_MIG_MB:-1024}
RATE=${BENCH_MIG_RATE:-32}
RUNS=${BENCH_MIG_RUNS:-3}
D=/tmp/ferry-bench-mig
NS_S=ferry-bench-src NS_D=ferry-bench-dst
PLAIN_REV=${BENCH_PLAIN_REV:-ee145f0}
. "$(dirname "$0")/../scripts/twohosts.sh"
rm -rf $D && mkdir -p $D
cleanup() {
	pkill -9 -f "$D/ctl" 2>/dev/null || true
	twohosts_down $NS_S $NS_D
	rm -rf $D
}
trap cleanup EXIT
twohosts_up $NS_S $NS_D 10.198.0 vfb
new_key $D/key

# The plaintext baseline: ferry as of $PLAIN_REV, built once.
PLAIN=/tmp/ferry-plain-$PLAIN_REV
if [ ! -x $PLAIN/build/ferry ] && git -C "$(dirname "$0")/.." cat-file -e "$PLAIN_REV" 2>/dev/null; then
	rm -rf $PLAIN && mkdir -p $PLAIN
	git -C "$(dirname "$0")/.." archive "$PLAIN_REV" | tar -x -C $PLAIN &&
		make -s -C $PLAIN -j"$(nproc)" all >/dev/null 2>&1 || true
fi
[ -x $PLAIN/build/ferry ] || PLAIN=""
FB=$B/ferry

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
stat_of() { # PID KEY
	rm -f $D/ctl.stats
	kill -USR2 "$1"
	while [ ! -s $D/ctl.stats ]; do sleep 0.02; done
	awk -v k="$2" '$1 == k {print $2}' $D/ctl.stats
}

# setup SERVER_OPTS...: a fresh workload ($P) writing on the source and a
# page server ($S) listening on the destination.
setup() {
	pkill -9 -f "$D/ctl" 2>/dev/null || true
	rm -rf $D/ctl.* $D/dst $D/src $D/pid
	ip netns exec $NS_S setsid "$B/tests/workloads/dirtier" $D/ctl --mb "$MB" --rate "$RATE" \
		</dev/null >/dev/null 2>&1 &
	while [ ! -s $D/ctl.ready ]; do sleep 0.1; done
	P=$(awk '{print $1}' $D/ctl.ready)
	sleep 1
	ip netns exec $NS_D "$FB" page-server -D $D/dst --address 10.198.0.2 --port 27300 \
		--auth-key $D/key "$@" >$D/srv.out 2>&1 &
	S=$!
	while ! grep -q listening $D/srv.out 2>/dev/null; do sleep 0.05; done
}

# one SERVER_OPTS READER [MIGRATE_OPTS]: one migration; prints
# "gap_ms total_s mib ferry_ms wire_mib".
one() {
	setup --restore --pidfile $D/pid $1
	stat_of "$P" max_gap_ns >/dev/null
	ip netns exec $NS_S "$FB" migrate -t "$P" --to 10.198.0.2:27300 \
		--auth-key $D/key --json --reader "$2" ${3:-} >$D/mig.json
	wait $S
	R=$(cat $D/pid)
	sleep 0.3
	gap=$(stat_of "$R" max_gap_ns)
	kill -9 "$R" 2>/dev/null || true
	python3 - "$gap" $D/mig.json <<'PY'
import json, sys
j = json.load(open(sys.argv[2]))
print("%.1f %.2f %.1f %.1f %.1f" % (int(sys.argv[1]) / 1e6, j["seconds"], j["bytes_sent"] / 1048576,
                                    j["downtime_seconds"] * 1e3, j["bytes_on_wire"] / 1048576))
PY
}

# one_dump READER: a frozen dump -R of the running workload to the page server;
# prints "freeze_ms seconds mib".
one_dump() {
	setup
	ip netns exec $NS_S "$FB" dump -t "$P" -D $D/src -R --reader "$1" --page-server \
		--address 10.198.0.2 --port 27300 --auth-key $D/key --json >$D/dump.json
	wait $S
	pkill -9 -f "$D/ctl" 2>/dev/null || true
	python3 - $D/dump.json <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("%.1f %.3f %.1f" % (j["freeze_seconds"] * 1e3, j["seconds"], j["bytes"] / 1048576))
PY
}

CFGS="warm-buffer||process-vm-readv| warm-splice||vmsplice| warm-zstd||process-vm-readv|--compress cold-buffer|--cold|process-vm-readv| cold-splice|--cold|vmsplice|"
for _ in $(seq "$RUNS"); do
	for cfg in $CFGS; do
		name=${cfg%%|*}
		rest=${cfg#*|}
		sopt=${rest%%|*}
		rest=${rest#*|}
		send=${rest%%|*}
		mopt=${rest#*|}
		one "$sopt" "$send" "$mopt" >>$D/rows.$name
	done
	for send in process-vm-readv vmsplice; do one_dump $send >>$D/dump.$send; done
	if [ -n "$PLAIN" ]; then
		FB=$PLAIN/build/ferry
		one "" process-vm-readv "" >>$D/rows.plaintext-warm-buffer
		one_dump process-vm-readv >>$D/dump.plaintext
		FB=$B/ferry
	fi
done
[ -n "$PLAIN" ] && CFGS="$CFGS plaintext-warm-buffer||process-vm-readv|"
[ -n "$PLAIN" ] || echo "(no plaintext rows: commit $PLAIN_REV cannot be built here)"
printf '%-34s %14s %14s %10s %12s %12s\n' "1 GiB at ${RATE} MB/s, veth" "downtime (ms)" \
	"ferry says" "total s" "MiB sent" "MiB on wire"
for cfg in $CFGS; do
	name=${cfg%%|*}
	printf '%-34s %14s %14s %10s %12s %12s\n' "migrate, $name" "$(cut -d' ' -f1 $D/rows.$name | median)" \
		"$(cut -d' ' -f4 $D/rows.$name | median)" "$(cut -d' ' -f2 $D/rows.$name | median)" \
		"$(cut -d' ' -f3 $D/rows.$name | median)" "$(cut -d' ' -f5 $D/rows.$name | median)"
done
echo "(downtime: the largest gap the workload saw in its own loop; median of $RUNS)"
printf '\n%-34s %14s %10s %12s %12s\n' "frozen dump -R --page-server" "frozen (ms)" "total s" "MiB" "GB/s frozen"
DUMPS="process-vm-readv vmsplice"
[ -n "$PLAIN" ] && DUMPS="$DUMPS plaintext"
for send in $DUMPS; do
	f=$(cut -d' ' -f1 $D/dump.$send | median)
	m=$(cut -d' ' -f3 $D/dump.$send | median)
	label="--reader $send"
	[ $send = plaintext ] && label="plaintext ($PLAIN_REV), buffer"
	printf '%-34s %14s %10s %12s %12s\n' "$label" "$f" "$(cut -d' ' -f2 $D/dump.$send | median)" \
		"$m" "$(awk -v m="$m" -v f="$f" 'BEGIN {printf "%.2f", m * 1048576 / (f / 1e3) / 1e9}')"
done
echo "(every row but the plaintext ones: TLS 1.3, AES-128-GCM, PSK)"
