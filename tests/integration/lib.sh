# Shared by integration tests: FERRY (the binary) and TOOLS (test programs)
# come from tests/run.sh. Each test exits 0 pass, 1 fail, 77 skip.
#
# Skips are counted, never only printed. scripts/test.sh ends with
# "tests: N passed, N failed, N skipped", counting the "pass|fail|skip ..."
# lines in $RESULTS:
#   - a whole script that cannot run here calls skip "why" (exit 77);
#     tests/run.sh records it as one "skip LABEL/integration/NAME: why";
#   - a case inside a script that cannot run here (a kernel feature or
#     backend missing, a mount not allowed, ASan) calls
#     skip_case "which case: why, naming what is missing" and goes on; it
#     prints "SKIP: ..." and appends "skip $TEST_ID: ..." to $RESULTS, one
#     skip each, on top of the script's own pass or fail.
# So no `if` may leave a case out without a skip_case in its else. TEST_ID
# is LABEL/integration/NAME under tests/run.sh, the script's name otherwise.
# In the Linux 6.1 guest tests/vm/guest.sh collects these lines and
# tests/integration/kvm61.sh records them again on the host.
set -u
FERRY=${FERRY:?FERRY must name the ferry binary}
TOOLS=${TOOLS:?TOOLS must name the test programs dir}
RESULTS=${RESULTS:-/dev/null}
TEST_ID=${TEST_ID:-$(basename "$0" .sh)}
T=$(mktemp -d /tmp/ferry-it-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
# with_copies, with_mounts, mapped_files, program_files: files as another
# host has them (copies made under $T).
. "$(dirname "$0")/../../scripts/copies.sh"
COPIES_IN=$T
export COPIES_IN

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
# skip WHY: the whole script is not run here. The reason goes to
# $SKIP_REASON_FILE (tests/run.sh lists it); the exit status counts it.
skip() {
	echo "SKIP: $*"
	[ -n "${SKIP_REASON_FILE:-}" ] && echo "$*" >"$SKIP_REASON_FILE"
	exit 77
}
# skip_case WHAT: one case is not run here; the script goes on.
skip_case() {
	echo "SKIP: $*"
	echo "skip $TEST_ID: $*" >>"$RESULTS"
}

# expect_rc WANT DESC CMD...: run CMD, compare its exit status; returns 1
# when it differs, so a caller can show more (a log) after the FAIL line.
expect_rc() {
	want=$1; desc=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -eq "$want" ]; then ok "$desc"; else
		fail "$desc: exit $rc, want $want: $(head -c 400 "$T/err")"
		return 1
	fi
}

# expect_in FILE TEXT DESC
expect_in() {
	if grep -qF -- "$2" "$1"; then ok "$3"; else fail "$3: \"$2\" not in $(head -c 400 "$1")"; fi
}

# For tests/workloads/treecheck: verdict OUT, the "ok BYTES DGRAMS" or
# "bad WHY" it writes; bytes OUT, how many stream bytes it has verified (0
# if bad); moving OUT WHAT, the stream goes on and nothing is bad, over a
# second.
verdict() { cat "$1" 2>/dev/null; }
bytes() { set -- $(verdict "$1"); [ "${1:-}" = ok ] && echo "$2" || echo 0; }
moving() {
	b0=$(bytes "$1")
	sleep 1
	b1=$(bytes "$1")
	case "$(verdict "$1")" in
	ok*) [ "$b1" -gt "$b0" ] && ok "$2 ($b0 -> $b1 bytes verified)" ||
		fail "$2: stream stuck at $b1 bytes" ;;
	*) fail "$2: $(verdict "$1")" ;;
	esac
}

# pipe_writer DIR: a process (H) writing "tick" lines into a pipe that a
# `cat >DIR/out1` outside it reads; KEY is that pipe as /proc/H/fd/1 shows
# it (pipe:[INO]). DIR/f is a FIFO read into DIR/out2, to hand over.
pipe_writer() {
	mkdir -p "$1"
	setsid sh -c "echo \$\$ >\"$1/pid\"; exec 0</dev/null 2>/dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; while :; do echo tick; sleep 0.05; done" |
		cat >"$1/out1" &
	wait_for "$1/pid" || fail "the pipe writer did not start"
	H=$(cat "$1/pid")
	PIDS="${PIDS:-} $H"
	sleep 0.3
	KEY=$(readlink /proc/$H/fd/1)
	mkfifo "$1/f"
}

# gone PID: the process has ended (no such process, or a zombie).
gone() {
	st=$(grep '^State:' /proc/$1/status 2>/dev/null) || return 0
	case $st in *Z*|*X*) return 0 ;; esac
	return 1
}

# all_gone PID...: every one ended (or a zombie) within 5 s in all; else 1.
all_gone() {
	for _ag in "$@"; do
		for _ in $(seq 100); do gone "$_ag" && break; sleep 0.05; done
		gone "$_ag" || return 1
	done
}

# reap PID: wait for a child of this shell that a dump should have ended.
# If a failed dump left it running, kill it after 5 s so that the script
# goes on to report the failure instead of waiting for it for ever.
reap() {
	all_gone "$1" || kill -9 "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# open_windows LOG: the kill-windows a -vv log (ferry's stderr) opened and
# did not close: where a SIGKILL may have left the target harmed, a risk
# docs/SECURITY.md lists (kill.sh, cgfreeze.sh).
open_windows() {
	awk '/kill-window open/ { k = $5; sub(":", "", k); o[k] = 1 }
	     /kill-window close/ { k = $5; sub(":", "", k); delete o[k] }
	     END { for (k in o) printf "%s ", k }' "$1"
}
# wait_for FILE: until it exists and is not empty (10 s at most).
wait_for() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

# check_mem CTL PID WHAT: the workload (dirtier, remerge) checks every page
# it owns on SIGUSR1 and writes "ok ..." or what is bad to CTL.check.
check_mem() {
	rm -f "$1.check"
	kill -USR1 "$2" 2>/dev/null
	for _ in $(seq 200); do [ -s "$1.check" ] && break; sleep 0.05; done
	case "$(cat "$1.check" 2>/dev/null)" in
	ok*) ok "$3" ;;
	*) fail "$3: $(cat "$1.check" 2>/dev/null)" ;;
	esac
}

# rsttest_check DIR PID: rsttest's own check, its SIGUSR2 handler made to
# run once first; RST gets its line ("ok counter=N ... pending=N" or "bad").
rsttest_check() {
	rm -f "$1/check"
	sleep 0.5
	kill -USR2 "$2"
	sleep 0.1
	kill -USR1 "$2"
	wait_for "$1/check" || fail "no check from rsttest $2"
	sleep 0.2
	RST=$(cat "$1/check" 2>/dev/null)
}

# log_goes_on FILE WHAT: rsttest's log holds 0, 1, 2, ... a line each: it
# went on at its offset, no gap, nothing overwritten.
log_goes_on() {
	awk 'NR - 1 != $1 { print "line " NR ": " $0; bad = 1; exit } END { exit bad }' "$1" \
		>"$T/gap" && ok "$2" || fail "log: $(cat "$T/gap")"
}

finish() { [ "$fails" -eq 0 ] && exit 0; echo "$fails failure(s)"; exit 1; }
