#!/bin/sh
# The whole test suite, as `make test` runs it (after `make deps`):
#   1. normal build (-O2, -Werror): unit tests and integration tests
#   2. the same suite built with ASan+UBSan
#   3. a short libFuzzer run of the image reader
# Ends with one line "tests: N passed, N failed, N skipped" (CI parses it),
# the failures and skips listed above it. A pass or fail is a program or
# script; a skip is a whole one (exit 77) or one case a script could not run
# here, with why (skip_case, see tests/integration/lib.sh).
set -u
cd "$(dirname "$0")/.."
RESULTS=$(mktemp)
export RESULTS
trap 'rm -f "$RESULTS"' EXIT
status=0

build() { # dir extra-make-args...
	d=$1; shift
	if ! make -s --no-print-directory -j"$(nproc)" BUILD="$d" "$@" all test-bins; then
		echo "fail build:$d" >>"$RESULTS"
		echo "== FAIL build $d"
		return 1
	fi
}

if build build; then
	tests/run.sh build normal || status=1
fi
if build build/asan SAN=1; then
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		tests/run.sh build/asan asan+ubsan || status=1
fi
echo "== RUN  fuzz/image-reader+stream"
if FUZZ_SECONDS=${FUZZ_SECONDS:-20} scripts/fuzz.sh; then
	echo "pass fuzz/image-reader+stream" >>"$RESULTS"; echo "== PASS fuzz/image-reader+stream"
else
	echo "fail fuzz/image-reader+stream" >>"$RESULTS"; echo "== FAIL fuzz/image-reader+stream"; status=1
fi

p=$(grep -c '^pass ' "$RESULTS"); f=$(grep -c '^fail ' "$RESULTS"); s=$(grep -c '^skip ' "$RESULTS")
echo
grep -E '^(fail|skip) ' "$RESULTS" | sed 's/^/  /'
echo "tests: $p passed, $f failed, $s skipped"
[ "$f" -eq 0 ] || status=1
exit $status
