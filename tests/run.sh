#!/bin/sh
# Run every unit test program and integration script against one build dir.
# Usage: tests/run.sh BUILD_DIR [LABEL]. Appends "pass|fail|skip NAME" lines to
# $RESULTS (if set) and exits non-zero if anything failed: one line per
# program or script by its exit status (0, 77 skip, else fail), and the
# integration scripts add one "skip NAME: why" per case they could not run
# here (skip_case in tests/integration/lib.sh).
set -u
B=${1:?usage: tests/run.sh BUILD_DIR [LABEL]}
LABEL=${2:-$B}
RESULTS=${RESULTS:-/dev/null}
FERRY=$(cd "$B" && pwd)/ferry
TOOLS=$(cd "$B" && pwd)/tests
# lib.sh's skip() leaves the reason for a whole-script skip here.
SKIP_REASON_FILE=$(mktemp)
trap 'rm -f "$SKIP_REASON_FILE"' EXIT
export FERRY TOOLS RESULTS SKIP_REASON_FILE
failed=0

record() { # status name [why]
	echo "$1 $LABEL/$2${3:+: $3}" >>"$RESULTS"
	case $1 in
	pass) echo "== PASS $LABEL/$2" ;;
	skip) echo "== SKIP $LABEL/$2${3:+: $3}" ;;
	*) echo "== FAIL $LABEL/$2"; failed=1 ;;
	esac
}

run_one() { # name cmd...
	name=$1; shift
	echo "== RUN  $LABEL/$name"
	: >"$SKIP_REASON_FILE"
	# A hung test must not hang CI: each gets TEST_TIMEOUT seconds; the
	# long ones (the emulated 6.1 guest boots and runs a suite of its own)
	# get LONG_TIMEOUT.
	limit=${TEST_TIMEOUT:-300}
	case $name in */kvm61|*/predump) limit=${LONG_TIMEOUT:-900} ;; esac
	t0=$(date +%s)
	TEST_ID="$LABEL/$name" timeout -k 10 "$limit" "$@"
	rc=$?
	[ $rc -eq 124 ] && echo "timed out after ${limit}s"
	# What each costs, for keeping the whole run within CI's budget.
	echo "took $(($(date +%s) - t0)) s"
	if [ $rc -eq 0 ]; then record pass "$name"
	elif [ $rc -eq 77 ]; then record skip "$name" "$(head -n 1 "$SKIP_REASON_FILE")"
	else record fail "$name"; fi
}

for t in "$B"/tests/test_*; do
	[ -x "$t" ] || continue
	run_one "unit/$(basename "$t")" "$t"
done
for t in tests/integration/*.sh; do
	[ "$(basename "$t")" = lib.sh ] && continue
	# Under a subreaper: processes a test restores with -d are reaped. In a
	# session of its own: run from a terminal, the workloads would otherwise
	# have it as their controlling terminal (a shell job, which a dump
	# refuses without --shell-job).
	run_one "integration/$(basename "$t" .sh)" setsid -w "$B/tests/tools/subreaper" sh "$t"
done
exit $failed
