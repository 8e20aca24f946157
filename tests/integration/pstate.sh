#!/bin/sh
# Process and mapping state beyond memory and registers (restore/pstate.c):
# the pstate workload sets madvise flags, THP disable, subreaper,
# no_new_privs, pdeathsig, thread names, personality, seccomp filters,
# interval timers and POSIX timers with gaps in their IDs, and checks from
# inside, after a dump and a restore, that each is as it set it. What ferry
# cannot restore is refused with the reason. Runs under tests/run.sh's
# subreaper, so restored processes are reaped.
. "$(dirname "$0")/lib.sh"
PST="$TOOLS/workloads/pstate"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

[ "$(id -u)" = 0 ] || skip "needs root (PTRACE_SECCOMP_GET_FILTER needs CAP_SYS_ADMIN)"
[ -d /sys/kernel/mm/ksm ] || skip "the kernel has no KSM: MADV_MERGEABLE fails"

# start CTL [ARGS]: the workload, W its PID once it has set everything.
start() {
	ctl=$1; shift
	rm -f "$ctl.ready" "$ctl.check"
	"$PST" "$ctl" "$@" </dev/null >"$ctl.log" 2>&1 &
	W=$!
	PIDS="$PIDS $W"
	wait_for "$ctl.ready" || fail "pstate $* did not start: $(cat "$ctl.log")"
}

# restore_d DIR [ENV...]: restore detached; RP gets the PID.
restore_d() {
	d=$1; shift
	rm -f "$T/pid"
	expect_rc 0 "restore -d $(basename "$d") $*" env "$@" "$FERRY" restore -D "$d" -d --pidfile "$T/pid"
	RP=$(cat "$T/pid" 2>/dev/null)
	[ -n "$RP" ] && PIDS="$PIDS $RP"
}

# 1. Before any dump: the workload's own check passes (it checks what it set).
start "$T/a"
check_mem "$T/a" "$W" "the workload's check passes before a dump"
expect_rc 0 "dump pstate" "$FERRY" dump -t "$W" -D "$T/a.d"
kill -9 "$W" 2>/dev/null
wait "$W" 2>/dev/null

# 2. Restored: every piece checked from inside.
restore_d "$T/a.d"
check_mem "$T/a" "$RP" "madvise flags, prctl state, seccomp, names, timers after restore"
# The filter is the last thing set, yet ferry left nothing behind.
[ "$(awk '/^Seccomp:/ {print $2}' /proc/$RP/status)" = 2 ] && ok "Seccomp: 2 in status" ||
	fail "status: $(grep Seccomp /proc/$RP/status)"
kill -9 "$RP" 2>/dev/null

# 3. On kernels without PR_TIMER_CREATE_RESTORE_IDS the IDs come from
#    creating timers in order and deleting fillers: forced here.
restore_d "$T/a.d" FERRY_FAULT=timer-ids-in-order
check_mem "$T/a" "$RP" "timer IDs by fillers (no PR_TIMER_CREATE_RESTORE_IDS)"
kill -9 "$RP" 2>/dev/null

# 4. A dump and a restore of the restored process: the state survives twice.
restore_d "$T/a.d"
expect_rc 0 "dump the restored process" "$FERRY" dump -t "$RP" -D "$T/a2.d"
restore_d "$T/a2.d"
check_mem "$T/a" "$RP" "state after a second dump and restore"
kill -9 "$RP" 2>/dev/null

# 5. Refused: a POSIX timer that signals a thread which has exited.
start "$T/o" --orphan-timer
expect_rc 0 "dump pstate --orphan-timer" "$FERRY" dump -t "$W" -D "$T/o.d"
expect_rc 1 "a timer signalling an exited thread is refused" "$FERRY" restore -D "$T/o.d" -d
expect_in "$T/err" "which is not a thread of process" "the refusal names the timer and thread"

# 6. Refused: filters installed without no_new_privs, CAP_SYS_ADMIN dropped
#    since: ferry, which installs them last, could not.
start "$T/n" --seccomp-no-nnp
expect_rc 0 "dump pstate --seccomp-no-nnp" "$FERRY" dump -t "$W" -D "$T/n.d"
expect_rc 1 "seccomp without no_new_privs or CAP_SYS_ADMIN is refused" "$FERRY" restore -D "$T/n.d" -d
expect_in "$T/err" "without no_new_privs and no CAP_SYS_ADMIN" "the refusal says why"

[ $fails -eq 0 ]
