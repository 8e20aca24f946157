#!/bin/sh
# The README's first command (`make demo`): ferry's main job on a built-in
# workload. It grows with each milestone; today: probe the kernel, take a live
# snapshot of a running multi-threaded process and prove every page of it,
# take the final dump that ends the process, and restore it from its images:
# the workload checks all of its memory itself once it runs again. Runs
# under a subreaper so that the restored process is reaped at the end.
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
printf '\n(iterative pre-dump and live migration come next: see README.md, Status)\n'
