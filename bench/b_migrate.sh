#!/bin/sh
# Live migration of tests/workloads/dirtier (1 GiB writing random pages at
# 32 MB/s) across a veth pair between two network namespaces, as the
# workload itself sees it: the largest gap in its own loop (the downtime
# it felt, on the source then the destination), total time, bytes on the
# wire. Rows: the destination building the process while rounds arrive
# (warm, the default) or only at the end (--cold); pages sent from the
# staging files through a buffer (the default) or by sendfile()
# (FERRY_SEND=sendfile); zstd on the wire (--compress).
# Every number is the median of RUNS runs.
set -eu
B=$(cd "${BUILD:-build}" && pwd)
MB=${BENCH_MIG_MB:-1024}
RATE=${BENCH_MIG_RATE:-32}
RUNS=${BENCH_MIG_RUNS:-3}
D=/tmp/ferry-bench-mig
NS_S=ferry-bench-src NS_D=ferry-bench-dst
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

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
stat_of() { # PID KEY
	rm -f $D/ctl.stats
	kill -USR2 "$1"
	while [ ! -s $D/ctl.stats ]; do sleep 0.02; done
	awk -v k="$2" '$1 == k {print $2}' $D/ctl.stats
}

# one SERVER_OPTS SEND [MIGRATE_OPTS]: one migration; prints
# "gap_ms total_s mib ferry_ms wire_mib".
one() {
	pkill -9 -f "$D/ctl" 2>/dev/null || true
	rm -rf $D/ctl.* $D/dst $D/pid
	ip netns exec $NS_S setsid "$B/tests/workloads/dirtier" $D/ctl --mb "$MB" --rate "$RATE" \
		</dev/null >/dev/null 2>&1 &
	while [ ! -s $D/ctl.ready ]; do sleep 0.1; done
	P=$(awk '{print $1}' $D/ctl.ready)
	sleep 1
	ip netns exec $NS_D "$B/ferry" page-server -D $D/dst --address 10.198.0.2 --port 27300 \
		--auth-key $D/key --restore --pidfile $D/pid $1 >$D/srv.out 2>&1 &
	S=$!
	while ! grep -q listening $D/srv.out 2>/dev/null; do sleep 0.05; done
	stat_of "$P" max_gap_ns >/dev/null
	ip netns exec $NS_S env FERRY_SEND="$2" "$B/ferry" migrate -t "$P" --to 10.198.0.2:27300 \
		--auth-key $D/key --json ${3:-} >$D/mig.json
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

printf '%-34s %14s %14s %10s %12s %12s\n' "1 GiB at ${RATE} MB/s, veth" "downtime (ms)" \
	"ferry says" "total s" "MiB sent" "MiB on wire"
for cfg in "warm buffer||buffer|" "warm sendfile||sendfile|" "warm zstd||buffer|--compress" \
	"cold buffer|--cold|buffer|"; do
	name=${cfg%%|*}
	rest=${cfg#*|}
	sopt=${rest%%|*}
	rest=${rest#*|}
	send=${rest%%|*}
	mopt=${rest#*|}
	: >$D/rows
	for _ in $(seq "$RUNS"); do one "$sopt" "$send" "$mopt" >>$D/rows; done
	printf '%-34s %14s %14s %10s %12s %12s\n' "$name" "$(cut -d' ' -f1 $D/rows | median)" \
		"$(cut -d' ' -f4 $D/rows | median)" "$(cut -d' ' -f2 $D/rows | median)" \
		"$(cut -d' ' -f3 $D/rows | median)" "$(cut -d' ' -f5 $D/rows | median)"
done
echo "(downtime: the largest gap the workload saw in its own loop; median of $RUNS)"
