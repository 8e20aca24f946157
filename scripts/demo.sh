#!/bin/sh
# The README's first command (`make demo`): ferry's main job on a built-in
# workload. It grows with each milestone; today: probe the kernel, take a live
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
	FERRY_DEMO_REAPER=1 exec "$B/tests/tools/subreaper" sh "$0" "$@"
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
printf '\n(live migration to another host comes next: see README.md, Status)\n'
