#!/bin/sh
# Iterative pre-dump on real processes. The trackers are held to a known
# write pattern (exactly the written pages copied, the rest in-parent); a
# workload that dirties random pages and changes its layout (munmap+mmap,
# mremap, mprotect, madvise, brk) is dumped iteratively, restored and dumped
# again many times, checking all its memory each time; separate pre-dump
# commands chain through the uffd-wp keeper; nothing of the tracking stays
# in the process; a target that dies mid-iteration leaves no complete-looking
# images. Runs under tests/run.sh's subreaper.
. "$(dirname "$0")/lib.sh"
DIRTIER="$TOOLS/workloads/dirtier"
RUNCHECK="$TOOLS/tools/runcheck"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

LOOPS=${PREDUMP_LOOPS:-10}
# gone PID: no such process, or a zombie. One read of its status: a process
# reaped between two reads must not look alive.
# started PID: when it started (clock ticks since boot), to tell it from a
# later process that got its PID (pid_max is 32768 here: PIDs come round fast).
started() { sed 's/.*) //' /proc/$1/stat 2>/dev/null | cut -d' ' -f20; }
# gone_since PID START: that process is gone, whatever has its PID now.
gone_since() { gone "$1" || [ "$(started "$1")" != "$2" ]; }

# start_dirtier CTL ARGS...: D gets the PID, MAIN and NPAGES its main region.
start_dirtier() {
	ctl=$1; shift
	rm -f "$ctl".*
	"$DIRTIER" "$ctl" "$@" </dev/null >/dev/null 2>&1 &
	D=$!
	PIDS="$PIDS $D"
	wait_for "$ctl.ready" || fail "dirtier did not start"
	MAIN=$(awk '{print $2}' "$ctl.ready")
	NPAGES=$(awk '{print $3}' "$ctl.ready")
}

# restore_d DIR: restore detached; RP gets the PID.
restore_d() {
	rm -f "$T/pid"
	"$FERRY" restore -D "$1" -d --pidfile "$T/pid" >"$T/out" 2>"$T/err" || fail "restore $1: $(cat "$T/err")"
	RP=$(cat "$T/pid" 2>/dev/null)
	[ -n "$RP" ] && PIDS="$PIDS $RP"
}

# no_tracking PID WHAT: no userfaultfd fd and no uffd-registered VMA left.
no_tracking() {
	if ls -l /proc/$1/fd 2>/dev/null | grep -q userfaultfd; then
		fail "$2: a userfaultfd fd is left in the process"
	elif grep '^VmFlags' /proc/$1/smaps | grep -qw uw; then
		fail "$2: VMAs are still registered for uffd write-protect"
	else
		ok "$2"
	fi
}

# keeper_of PID: the keeper process holding PID's tracking, if any. From
# /proc, not pgrep: the Linux 6.1 guest's busybox has no pgrep.
keeper_of() {
	for c in /proc/[0-9]*/cmdline; do
		tr '\0' ' ' <"$c" 2>/dev/null | grep -q "ferry pre-dump .*-t $1 " && basename "${c%/cmdline}"
	done
	true
}

# The trackers this kernel has: uffd-wp needs WP_ASYNC and PAGEMAP_SCAN
# (6.7), soft-dirty a kernel built with it (tests/integration/kvm61.sh runs
# this script again on Debian's 6.1, which has soft-dirty and not uffd-wp).
CHECK=$("$FERRY" check --json)
have() { echo "$CHECK" | grep -q "\"$1\":true"; }
UFFD=no
have uffd_wp_async && have pagemap_scan && UFFD=yes
TRACKERS="hash"
MISSING="" # the trackers this kernel lacks: each case run per tracker skips them
[ $UFFD = yes ] && TRACKERS="uffd-wp hash" || MISSING="uffd-wp"
if have soft_dirty; then
	TRACKERS="$TRACKERS soft-dirty"
else
	MISSING="$MISSING soft-dirty"
fi
lacks() { # tracker: why this kernel cannot run it
	case $1 in
	uffd-wp) echo "this kernel has no uffd-wp tracking (userfaultfd WP_ASYNC and PAGEMAP_SCAN, 6.7)" ;;
	soft-dirty) echo "this kernel has no soft-dirty (CONFIG_MEM_SOFT_DIRTY; kvm61.sh runs it on Linux 6.1)" ;;
	esac
}
skip_missing() { # CASE: skip_case it for each tracker this kernel lacks
	for tr in $MISSING; do skip_case "$tr: $1: $(lacks $tr)"; done
}

# 1. Each tracker against a known write pattern: between two pre-dumps the
#    workload writes pages i % 7 == 3 of its main region and nothing else
#    there; the second pre-dump must copy exactly those and no more.
skip_missing "exactly the written pages copied (1)"
for tr in $TRACKERS; do
	start_dirtier "$T/x" --mb 8 --manual
	expect_rc 0 "$tr: first pre-dump" "$FERRY" pre-dump -t $D -D "$T/x1" --track $tr
	expect_in "$T/out" "tracker $tr" "$tr: the summary names the tracker"
	kill -HUP $D
	wait_for "$T/x.hup" || fail "$tr: the workload did not write its pattern"
	expect_rc 0 "$tr: second pre-dump on top of the first" \
		"$FERRY" pre-dump -t $D -D "$T/x2" --prev-images-dir ../x1
	if "$RUNCHECK" "$T/x2" "$MAIN" "$NPAGES" 7 3 >"$T/rc"; then
		ok "$tr: exactly the written pages copied ($(cat "$T/rc"))"
	else
		fail "$tr: $(cat "$T/rc")"
	fi
	# With nothing written since, a third round copies none of the region.
	expect_rc 0 "$tr: third pre-dump" "$FERRY" pre-dump -t $D -D "$T/x3" --prev-images-dir ../x2
	if "$RUNCHECK" "$T/x3" "$MAIN" "$NPAGES" 1000000000 1000000000 >"$T/rc"; then
		ok "$tr: nothing written, nothing copied ($(cat "$T/rc"))"
	else
		fail "$tr: unwritten pages copied: $(cat "$T/rc")"
	fi
	kill -9 $D
	wait $D 2>/dev/null
	rm -rf "$T/x1" "$T/x2" "$T/x3"
done

# 1b. A sparse reservation (1 TiB, one page touched, as ASan's shadow or a
#     JVM heap) must not get page tables for all of it from the tracking.
if [ $UFFD = yes ]; then
start_dirtier "$T/z" --mb 8 --rate 8 --reserve-gb 1024
pte() { awk '/^VmPTE/ {print $2}' /proc/$1/status; }
before=$(pte $D)
expect_rc 0 "uffd-wp pre-dump of a process with 1 TiB reserved" "$FERRY" pre-dump -t $D -D "$T/z1" --track uffd-wp
expect_rc 0 "and a second round" "$FERRY" pre-dump -t $D -D "$T/z2" --prev-images-dir ../z1
after=$(pte $D)
[ $((after - before)) -lt 8192 ] && ok "page tables grew by $((after - before)) kB only" ||
	fail "tracking built $((after - before)) kB of page tables"
kill -9 $D
wait $D 2>/dev/null
else
	skip_case "uffd-wp: no page tables built for a 1 TiB reservation (1b): $(lacks uffd-wp)"
fi

# 2. dump --iterative, restore, check every page, and again on the restored
#    process, many times: random writes at 32 MB/s and layout churn.
skip_missing "iterative dump + restore, $LOOPS times (2)"
for tr in $TRACKERS; do
	start_dirtier "$T/w" --mb 64 --rate 32 --churn 5
	P=$D
	n=0
	while [ $n -lt "$LOOPS" ]; do
		n=$((n + 1))
		rm -rf "$T/it"
		pst=$(started $P)
		if ! "$FERRY" dump --iterative -t $P -D "$T/it" --track $tr --max-rounds 4 \
			--downtime-limit 20 >"$T/iter.out" 2>"$T/err"; then
			fail "$tr loop $n: iterative dump: $(cat "$T/err")"
			break
		fi
		# Ended by the dump; its teardown may take seconds in the
		# emulated 6.1 guest or under ASan (seen: over 5 s there, and once
		# over 30 s in the guest on a loaded CI machine). A slow one is
		# reported; one that never goes fails with what it is doing.
		w=0
		while [ $w -lt 2400 ] && ! gone_since $P "$pst"; do w=$((w + 1)); sleep 0.05; done
		[ $w -gt 100 ] && echo "note: $tr loop $n: the dumped process took $((w / 20)) s to go"
		gone_since $P "$pst" || fail "$tr loop $n: the dumped process is still there after 120 s:" \
			"$(grep -E '^(State|SigPnd|ShdPnd|TracerPid)' /proc/$P/status 2>/dev/null | tr '\n\t' '  ')" \
			"wchan $(cat /proc/$P/wchan 2>/dev/null)"
		restore_d "$T/it"
		[ -n "$RP" ] || break
		check_mem "$T/w" $RP "$tr loop $n: every page right after iterative dump + restore"
		P=$RP
	done
	grep -q '^final' "$T/iter.out" && grep -q 'frozen' "$T/iter.out" &&
		ok "$tr: a row per round and the freeze" || fail "$tr: no round table: $(head -c 300 "$T/iter.out")"
	kill -9 $P 2>/dev/null
done

# 3. A live snapshot (--iterative --leave-running): the process runs on,
#    untracked, and the snapshot restores once it is gone.
start_dirtier "$T/s" --mb 32 --rate 16 --churn 5
expect_rc 0 "iterative live snapshot" "$FERRY" dump --iterative -R -t $D -D "$T/snap" --json
expect_in "$T/out" '"rounds":[{"round":1,' "--json has the rounds"
expect_in "$T/out" '"left_running":true' "--json says the process was left running"
no_tracking $D "after a live snapshot nothing of the tracking is left"
check_mem "$T/s" $D "the process runs on intact after the snapshot"
kill -9 $D
wait $D 2>/dev/null
restore_d "$T/snap"
[ -n "$RP" ] && check_mem "$T/s" $RP "the snapshot restores intact"
kill -9 $RP 2>/dev/null

# 3b. Auto-converge: rounds of the hash tracker (which reads all memory each
#     round) never shrink against 256 MB/s of writes, so the process is
#     throttled, it says how, and the process is not left stopped.
start_dirtier "$T/a" --mb 64 --rate 256
expect_rc 0 "iterative with --auto-converge" "$FERRY" dump --iterative -R --auto-converge \
	--track hash --downtime-limit 0 --max-rounds 8 -t $D -D "$T/ac" --json
expect_in "$T/out" '"throttle_method":"' "says how it throttled"
grep -q '"throttle":0\.[1-9]' "$T/out" && ok "a round ran throttled" || fail "no round was throttled: $(head -c 600 "$T/out")"
sleep 0.1
grep -q '^State:.*T' /proc/$D/status && fail "the process was left stopped" || ok "the process is not left stopped"
check_mem "$T/a" $D "the throttled process is intact"
kill -9 $D
wait $D 2>/dev/null

# 4. Separate commands: pre-dump, pre-dump, dump, with the uffd-wp tracking
#    kept by a keeper between them; then restore.
skip_missing "pre-dump, pre-dump, dump, restore as separate commands (4)"
for tr in $TRACKERS; do
	start_dirtier "$T/c" --mb 32 --rate 32 --churn 5
	mkdir -p "$T/c"
	expect_rc 0 "$tr: pre-dump 1" "$FERRY" pre-dump -t $D -D "$T/c/p1" --track $tr
	no_fd=$(ls -l /proc/$D/fd | grep -c userfaultfd)
	[ "$no_fd" = 0 ] && ok "$tr: the process holds no tracking fd" || fail "$tr: userfaultfd fd left in the process"
	if [ $tr = uffd-wp ]; then
		[ -n "$(keeper_of $D)" ] && ok "a keeper holds the tracking between commands" || fail "no keeper"
	fi
	sleep 0.2
	expect_rc 0 "$tr: pre-dump 2" "$FERRY" pre-dump -t $D -D "$T/c/p2" --prev-images-dir ../p1
	expect_in "$T/out" "unchanged in parent" "$tr: pre-dump 2 copies only changes"
	grep -q "copying every page" "$T/err" && fail "$tr: tracking was lost between commands"
	sleep 0.2
	expect_rc 0 "$tr: final dump" "$FERRY" dump -t $D -D "$T/c/d" --prev-images-dir ../p2
	expect_in "$T/out" "in parent" "$tr: the final dump records unchanged pages in parent"
	for _ in $(seq 100); do gone $D && [ -z "$(keeper_of $D)" ] && break; sleep 0.05; done
	[ -z "$(keeper_of $D)" ] && ok "$tr: no keeper outlives the process" || fail "$tr: keeper left"
	expect_rc 0 "$tr: the chain verifies" "$FERRY" show --verify "$T/c/d"
	restore_d "$T/c/d"
	[ -n "$RP" ] && check_mem "$T/c" $RP "$tr: every page after pre-dump, pre-dump, dump, restore"
	kill -9 $RP 2>/dev/null
	rm -rf "$T/c"
done

# 5. A new chain replaces an old one's uffd-wp tracking instead of failing on it.
if [ $UFFD = yes ]; then
start_dirtier "$T/n" --mb 8 --rate 8
expect_rc 0 "pre-dump, chain A" "$FERRY" pre-dump -t $D -D "$T/na"
expect_rc 0 "pre-dump, chain B (a fresh start)" "$FERRY" pre-dump -t $D -D "$T/nb"
expect_rc 0 "chain B goes on" "$FERRY" pre-dump -t $D -D "$T/nb2" --prev-images-dir ../nb
expect_rc 0 "chain A's tracking is gone: it copies everything, says so" \
	"$FERRY" pre-dump -t $D -D "$T/na2" --prev-images-dir ../na
expect_in "$T/err" "copying every page" "the lost tracking is reported"
kill -9 $D
wait $D 2>/dev/null
else
	skip_case "uffd-wp: a new chain replaces an old one's tracking (5): $(lacks uffd-wp)"
fi

# 5b. A mapping taken apart and put back between rounds (remerge.c): the
#     kernel merges the halves again and, with uffd-wp, silently drops the
#     lower half's registration; a write then leaves a writable page still
#     marked write-protected, whose later writes no scan would report unless
#     re-registering clears such marks. Every tracker must restore it intact.
skip_missing "a mapping taken apart and put back (5b)"
for tr in $TRACKERS; do
	rm -f "$T/m".*
	mkdir -p "$T/m"
	"$TOOLS/workloads/remerge" "$T/m" </dev/null >/dev/null 2>&1 &
	D=$!
	PIDS="$PIDS $D"
	wait_for "$T/m.ready" || fail "remerge did not start"
	A=$(awk '{print $2}' "$T/m.ready")
	expect_rc 0 "$tr: remerge pre-dump 1" "$FERRY" pre-dump -t $D -D "$T/m/p1" --track $tr
	for n in 1 2 3; do
		kill -HUP $D
		for _ in $(seq 200); do [ "$(cat "$T/m.step" 2>/dev/null)" = $n ] && break; sleep 0.02; done
		[ "$(cat "$T/m.step" 2>/dev/null)" = $n ] || fail "$tr: remerge step $n not done"
		if [ $n = 2 ] && [ $tr = uffd-wp ]; then
			# The case at hand, if this kernel behaves so: the halves are
			# one VMA again, and it is no longer registered.
			line=$(grep "^${A#0x}-" /proc/$D/maps)
			vm=$(awk -v a="${A#0x}" '$1 ~ "^"a"-" {f=1} f && /^VmFlags/ {print; exit}' /proc/$D/smaps)
			echo "note: after the move back: ${line%% *}, registered: $(echo "$vm" | grep -qw uw && echo yes || echo no)"
		fi
		[ $n = 3 ] && break
		expect_rc 0 "$tr: remerge pre-dump $((n + 1))" \
			"$FERRY" pre-dump -t $D -D "$T/m/p$((n + 1))" --prev-images-dir ../p$n
	done
	expect_rc 0 "$tr: remerge final dump" "$FERRY" dump -t $D -D "$T/m/d" --prev-images-dir ../p3
	kill -9 $D 2>/dev/null
	wait $D 2>/dev/null
	restore_d "$T/m/d"
	[ -n "$RP" ] && check_mem "$T/m" $RP "$tr: a mapping taken apart and put back is restored intact"
	kill -9 $RP 2>/dev/null
	rm -rf "$T/m"
done

# 6. A process using userfaultfd itself: auto picks another tracker, an
#    explicit uffd-wp is refused with the reason, the process unharmed.
start_dirtier "$T/u" --mb 8 --rate 8 --own-uffd
expect_rc 0 "auto tracker for a process with its own userfaultfd" \
	"$FERRY" pre-dump -t $D -D "$T/u1" --json
grep -q '"tracker":"uffd-wp"' "$T/out" && fail "auto chose uffd-wp for it" ||
	ok "auto chose $(sed -n 's/.*"tracker":"\([a-z-]*\)".*/\1/p' "$T/out")"
expect_rc 1 "uffd-wp refused for it" "$FERRY" pre-dump -t $D -D "$T/u2" --track uffd-wp
if [ $UFFD = yes ]; then
	expect_in "$T/err" "uses userfaultfd itself" "says why"
else
	skip_case "the uffd-wp refusal names the process's own userfaultfd (6): $(lacks uffd-wp)"
fi
check_mem "$T/u" $D "the process is unharmed"
kill -9 $D
wait $D 2>/dev/null

# 7. The target dies between rounds: a clean error, no inventory in DIR (an
#    old dump there included), nothing left behind.
start_dirtier "$T/k" --mb 16 --rate 16
mkdir -p "$T/kd" && : >"$T/kd/inventory.img"
FERRY_FAULT=kill-target-after-round expect_rc 1 "target killed mid-iteration" \
	"$FERRY" dump --iterative -t $D -D "$T/kd"
expect_in "$T/err" "exited" "says the process exited"
expect_in "$T/err" "no complete dump was written" "says nothing complete was written"
[ ! -e "$T/kd/inventory.img" ] && ok "no inventory in DIR" || fail "DIR looks complete"
expect_rc 1 "restore refuses it" "$FERRY" restore -D "$T/kd"
wait $D 2>/dev/null
start_dirtier "$T/k2" --mb 8 --rate 8
expect_rc 0 "pre-dump leaves a keeper" "$FERRY" pre-dump -t $D -D "$T/k2d"
kill -9 $D
wait $D 2>/dev/null
for _ in $(seq 100); do [ -z "$(keeper_of $D)" ] && break; sleep 0.05; done
[ -z "$(keeper_of $D)" ] && ok "the keeper exits with its process" || fail "keeper outlived its process"

# 8. Refusals, the process running on: a missing previous dump, a tracker
#    this kernel lacks, options that do not fit together.
start_dirtier "$T/r" --mb 8
expect_rc 1 "missing --prev-images-dir" "$FERRY" pre-dump -t $D -D "$T/r1" --prev-images-dir ../nope
expect_in "$T/err" "previous images" "names the previous images"
if ! echo "$TRACKERS" | grep -q soft-dirty; then
	expect_rc 1 "soft-dirty refused on this kernel" "$FERRY" pre-dump -t $D -D "$T/r2" --track soft-dirty
	expect_in "$T/err" "soft" "says soft-dirty is missing"
else
	skip_case "soft-dirty refused on a kernel without it (8): this kernel has soft-dirty"
fi
expect_rc 2 "--downtime-limit without --iterative" "$FERRY" dump -t $D -D "$T/r3" --downtime-limit 5
expect_rc 2 "--leave-running on pre-dump" "$FERRY" pre-dump -t $D -D "$T/r4" -R
check_mem "$T/r" $D "the process is unharmed by the refusals"
kill -9 $D

finish
