#!/bin/sh
# The README's first command (`make demo`): ferry's main job on a built-in
# workload. First the live migration: a process writing 32 MB/s moves from a
# "source host" to a "destination host" (two network namespaces joined by a
# veth pair), its rounds and downtime shown, and checks its memory there.
# Then the rest of what ferry does: probe the kernel, take a live
# snapshot of a running multi-threaded process and prove every page of it,
# take the final dump that ends the process, and restore it from its images:
# the workload checks all of its memory itself once it runs again. Then the
# iterative pre-copy: a process writing 32 MB/s is dumped in rounds while it
# runs, stopped only for the last small one, and restored. Runs under a
# subreaper so that the restored processes are reaped at the end.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
if [ -z "${FERRY_DEMO_REAPER:-}" ]; then
	FERRY_DEMO_REAPER=1 exec setsid -w "$B/tests/tools/subreaper" sh "$0" "$@"
fi
D=$(mktemp -d /tmp/ferry-demo-XXXXXX)
W=""
trap '[ -n "$W" ] && kill -9 $W 2>/dev/null; rm -rf "$D"' EXIT

step() { printf '\n== %s\n' "$*"; }
# The workload checks all of its memory on SIGUSR1 and says "ok" or what is bad.
selfcheck() {
	rm -f "$D/workload.desc.check"
	kill -USR1 $W
	while [ ! -s "$D/workload.desc.check" ]; do sleep 0.05; done
	echo "workload says: $(cat "$D/workload.desc.check")"
	[ "$(cat "$D/workload.desc.check")" = ok ]
}

# ---- live migration between two "hosts" ----
. scripts/twohosts.sh
. scripts/copies.sh
COPIES_IN=$D
export COPIES_IN
NS_S=ferry-demo-src NS_D=ferry-demo-dst
MW=""
netclean() {
	if [ -n "$MW" ]; then kill -9 $MW 2>/dev/null || true; fi
	twohosts_down $NS_S $NS_D
}
trap 'netclean; [ -n "$W" ] && kill -9 $W 2>/dev/null; rm -rf "$D"' EXIT
netclean
step "two hosts on this machine: network namespaces $NS_S (10.197.0.1) and $NS_D (10.197.0.2), joined by a veth pair"
twohosts_up $NS_S $NS_D 10.197.0 vfd
new_key "$D/key"
echo "a pre-shared key for both ends: $D/key"

step "on the source host: a workload of 256 MiB writing random pages at 32 MB/s"
ip netns exec $NS_S "$B/tests/workloads/dirtier" "$D/mig" --mb 256 --rate 32 </dev/null >/dev/null 2>&1 &
MW=$!
while [ ! -s "$D/mig.ready" ]; do sleep 0.05; done
echo "pid $MW, network namespace $(readlink /proc/$MW/ns/net)"

step "on the destination host: ferry page-server --restore"
# The destination has its own copies of the program and its libraries (a
# mount namespace with copies bind-mounted over them): restore knows them
# by their content, not by sharing an inode with the source's.
DST_FILES=$(program_files "$B/tests/workloads/dirtier" | tr '\n' ' ')
echo "its own copies of: $DST_FILES"
# shellcheck disable=SC2086
scripts/with-copies $DST_FILES -- ip netns exec $NS_D "$B/ferry" page-server -D "$D/arrived" --address 10.197.0.2 --port 27027 \
	--auth-key "$D/key" --restore --pidfile "$D/arrived.pid" >"$D/server.out" 2>&1 &
SRV=$!
while ! grep -q listening "$D/server.out" 2>/dev/null; do sleep 0.05; done
cat "$D/server.out"
sleep 0.5

step "on the source host: ferry migrate -t $MW --to 10.197.0.2:27027"
ip netns exec $NS_S "$B/ferry" migrate -t $MW --to 10.197.0.2:27027 --auth-key "$D/key"
wait $SRV || { cat "$D/server.out"; exit 1; }
sed -n '/received/,$p' "$D/server.out" | tail -3
RP=$(cat "$D/arrived.pid")
[ -d /proc/$MW ] && ! grep -q '^State:.*Z' /proc/$MW/status && { echo "the original still runs"; exit 1; }
MW=$RP
echo "the original is gone; process $RP runs in $(readlink /proc/$RP/ns/net) (the destination's)"
echo "its program is the destination's copy: inode $(stat -L -c %i /proc/$RP/exe), the source's $(stat -c %i "$(readlink -f "$B/tests/workloads/dirtier")")"
rm -f "$D/mig.check"
kill -USR1 $RP
while [ ! -s "$D/mig.check" ]; do sleep 0.05; done
echo "workload says, on the destination: $(cat "$D/mig.check")"
case "$(cat "$D/mig.check")" in ok*) ;; *) exit 1 ;; esac
kill -9 $RP
MW=""
netclean

step "ferry check: what this kernel offers"
"$B/ferry" check | sed -n '/^backends/,$p'

step "start the demo workload: 64 MiB of known contents, 3 threads, every kind of mapping"
"$B/tests/workloads/memtest" "$D/workload.desc" --mb 64 --threads 2 </dev/null >/dev/null 2>&1 &
W=$!
while [ ! -e "$D/workload.desc" ]; do sleep 0.05; done
echo "pid $W, $(grep -c . /proc/$W/maps) mappings, $(awk '/VmRSS/ {printf "%d", $2 / 1024}' /proc/$W/status) MiB resident"

step "ferry dump --leave-running: a live snapshot"
"$B/ferry" dump -t $W -D "$D/snapshot" --leave-running

step "every page in the snapshot is what the workload wrote"
"$B/tests/tools/checkdump" "$D/snapshot" "$D/workload.desc"

step "the workload runs on unharmed: it re-checks all of its memory itself"
selfcheck

step "ferry dump: the final dump, which ends the process once its images are on disk"
"$B/ferry" dump -t $W -D "$D/final"
wait $W 2>/dev/null || true
W=""

step "ferry show --verify: the images, checksummed through and through"
"$B/ferry" show --verify "$D/final" | sed -n '1,8p;/^pagemap/,$p'

step "ferry restore -d: the process back from its images, same PID, running on"
W=$("$B/ferry" -v restore -D "$D/final" -d)
echo "restored pid $W: $(ls /proc/$W/task | wc -l) threads, $(grep -c . /proc/$W/maps) mappings"

step "the restored workload re-checks all of its memory itself"
selfcheck
kill -9 $W
W=""

step "start a busy workload: 256 MiB, writing random pages at 32 MB/s"
"$B/tests/workloads/dirtier" "$D/busy" --mb 256 --rate 32 </dev/null >/dev/null 2>&1 &
W=$!
while [ ! -s "$D/busy.ready" ]; do sleep 0.05; done
sleep 0.5
# Its stats (on SIGUSR2) give the longest gap in its own loop since the last ask.
busystat() {
	rm -f "$D/busy.stats"
	kill -USR2 $W
	while [ ! -s "$D/busy.stats" ]; do sleep 0.05; done
	awk '$1 == "max_gap_ns" {printf "%.1f ms", $2 / 1e6}' "$D/busy.stats"
}
busystat >/dev/null

step "ferry dump --iterative --leave-running: rounds while it runs, then one short freeze"
"$B/ferry" dump --iterative --leave-running -t $W -D "$D/iter"
echo "the longest stop the workload itself felt meanwhile: $(busystat)"

step "the original ends; ferry restore -D brings the snapshot back from its chain of rounds"
kill -9 $W
wait $W 2>/dev/null || true
W=$("$B/ferry" restore -D "$D/iter" -d)
rm -f "$D/busy.check"
kill -USR1 $W
while [ ! -s "$D/busy.check" ]; do sleep 0.05; done
echo "workload says: $(cat "$D/busy.check")"
case "$(cat "$D/busy.check")" in ok*) ;; *) exit 1 ;; esac
