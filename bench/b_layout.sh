#!/bin/sh
# Layout: PROCMAP_QUERY against parsing /proc/PID/maps, for 100, 10k and 60k VMAs.
set -eu
B=${BUILD:-build}
for n in 100 10000 60000; do
	"$B/bench/layout_bench" "$n" 5
done
