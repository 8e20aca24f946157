#!/bin/sh
# `make bench`: one table from one run, every mode side by side. Benchmarks
# measure; tests never assert timings. Results go to docs/PERFORMANCE.md with
# the command that produced them.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
printf '%-28s %-22s %12s %12s\n' benchmark mode size result
printf '%-28s %-22s %12s %12s\n' ---------------------------- ---------------------- ------------ ------------
for b in bench/b_*.sh; do
	[ -e "$b" ] || { echo "(no benchmarks yet)"; break; }
	# Under a subreaper: restored processes are reaped and free their PIDs.
	BUILD=$B setsid -w "$B/tests/tools/subreaper" sh "$b"
done
