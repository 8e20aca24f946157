#!/bin/sh
# Dump and restore on a kernel without PROCMAP_QUERY and PAGEMAP_SCAN: the
# layout comes from /proc/PID/maps and the pages from /proc/PID/pagemap,
# because auto has nothing better, not because it was forced.
. tests/integration/lib.sh
MEMTEST="$TOOLS/workloads/memtest"
"$MEMTEST" "$T/m.desc" --mb 16 --threads 3 </dev/null >/dev/null 2>&1 &
W=$!
for _ in $(seq 200); do [ -e "$T/m.desc" ] && break; sleep 0.05; done
expect_rc 0 "dump -R with auto backends" "$FERRY" dump -R -t $W -D "$T/live" --json
expect_in "$T/out" '"layout":"maps"' "auto picked the maps layout"
expect_in "$T/out" '"pages_backend":"pagemap"' "auto picked the pagemap backend"
expect_rc 0 "every page in the images" "$TOOLS/tools/checkdump" "$T/live" "$T/m.desc"
expect_rc 0 "final dump" "$FERRY" dump -t $W -D "$T/final"
wait $W 2>/dev/null
expect_rc 0 "restore -d" "$FERRY" restore -D "$T/final" -d --pidfile "$T/pid"
R=$(cat "$T/pid" 2>/dev/null)
rm -f "$T/m.desc.check"
kill -USR1 "$R" 2>/dev/null
for _ in $(seq 100); do [ -s "$T/m.desc.check" ] && break; sleep 0.05; done
[ "$(cat "$T/m.desc.check" 2>/dev/null)" = ok ] && ok "the restored process checks all its memory" ||
	fail "restored process: $(cat "$T/m.desc.check" 2>/dev/null)"
kill -9 "$R" 2>/dev/null
finish
