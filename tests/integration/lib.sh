# Shared by integration tests: FERRY (the binary) and TOOLS (test programs)
# come from tests/run.sh. Each test exits 0 pass, 1 fail, 77 skip.
set -u
FERRY=${FERRY:?FERRY must name the ferry binary}
TOOLS=${TOOLS:?TOOLS must name the test programs dir}
T=$(mktemp -d /tmp/ferry-it-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
skip() { echo "SKIP: $*"; exit 77; }

# expect_rc WANT DESC CMD...: run CMD, compare its exit status.
expect_rc() {
	want=$1; desc=$2; shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -eq "$want" ]; then ok "$desc"; else fail "$desc: exit $rc, want $want: $(head -c 400 "$T/err")"; fi
}

# expect_in FILE TEXT DESC
expect_in() {
	if grep -qF -- "$2" "$1"; then ok "$3"; else fail "$3: \"$2\" not in $(head -c 400 "$1")"; fi
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

finish() { [ "$fails" -eq 0 ] && exit 0; echo "$fails failure(s)"; exit 1; }
