#!/bin/sh
# Containers through Debian's runc with ferry as its CRIU (`runc --criu`): a
# busybox container whose init (sh) runs tests/workloads/dirtier (256 MiB,
# writing random pages at 16 MB/s), stdio on a pipe, as runtimes give it.
# Per mode: the wall time of `runc checkpoint`, of `runc restore -d` (until
# that runc exits), and the downtime the dirtier itself felt
# (the largest gap in its own loop, from just before the final checkpoint
# to after the restore; its pages are then checked, "BAD" if one is wrong).
# Modes: plain (one checkpoint), and pre-dump x2 (two --pre-dump, 2 s apart,
# then the final checkpoint on top, --parent-path). Then the same plain rows
# with runc's own criu, where `criu check` passes. Images go to /tmp (disk).
set -eu
B=$(cd "${BUILD:-build}" && pwd)
MB=${BENCH_RUNC_MB:-256}
row() { printf '%-28s %-22s %12s %12s\n' "$1" "$2" "$3" "$4"; }
ns() { date +%s%N; }
ms() { echo "$(( ($2 - $1) / 1000000 )) ms"; }
BB=$(command -v busybox || true)
command -v runc >/dev/null 2>&1 || { row "runc+ferry" "not run" "-" "runc not installed"; exit 0; }
[ -n "$BB" ] && ldd "$BB" 2>&1 | grep -q "not a dynamic" ||
	{ row "runc+ferry" "not run" "-" "no static busybox"; exit 0; }
T=$(mktemp -d /tmp/ferry-bench-runc-XXXXXX)
CTRS=""
cleanup() {
	for c in $CTRS; do runc delete -f "$c" >/dev/null 2>&1 || true; done
	wait
	rm -rf "$T"
}
trap cleanup EXIT
trap "exit 1" INT TERM

# The bundle: busybox, the dirtier with the libraries it loads.
BUN="$T/bundle"
R="$BUN/rootfs"
. scripts/bundle.sh
bundle_rootfs "$R" "$B/tests/workloads/dirtier" sh sleep
(cd "$BUN" && runc spec)
python3 - "$BUN/config.json" "$MB" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "dirtier /tmp/ctl --mb %s --rate 16 & "
    "while true; do sleep 1; done" % sys.argv[2]]
c["root"]["readonly"] = False
json.dump(c, open(sys.argv[1], "w"))
PY

init_pid() { runc state "$1" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
# dirtier_pid ID: the container's dirtier, its host PID (the init's child).
dirtier_pid() {
	for c in $(cat /proc/"$(init_pid "$1")"/task/*/children 2>/dev/null); do
		grep -q "^Name:.*dirtier" /proc/"$c"/status 2>/dev/null && echo "$c"
	done
	true
}
# ask PID SIG KIND: signal the dirtier, wait (10 s at most) for its CTL.KIND.
ask() {
	rm -f "$R/tmp/ctl.$3"
	kill -"$2" "$1" 2>/dev/null || return 1
	for _ in $(seq 500); do [ -s "$R/tmp/ctl.$3" ] && return 0; sleep 0.02; done
	return 1
}
# failed LABEL MODE WHAT LOG: a row, ferry's (or criu's) Error lines on
# stderr; the container ($id) goes.
failed() {
	row "$1" "$2" "$MB MiB" "failed"
	echo "b_runc: $1 ($2): $3 failed:" >&2
	cat "$T/err" >&2 2>/dev/null || true
	grep -h "Error" "$4" >&2 2>/dev/null || true
	runc delete -f "$id" >/dev/null 2>&1 || true
	wait
}

N=0
# one LABEL MODE RUNC...: a fresh container, checkpointed (MODE "plain" or
# "pre-dump x2") and restored with RUNC (runc and its options); three rows.
one() {
	label=$1 mode=$2; shift 2
	N=$((N + 1)); id=ferry-bench-runc-$$-$N; I="$T/img$N"
	rm -f "$R"/tmp/ctl.*
	mkdir -p "$I"
	CTRS="$CTRS $id"
	(cd "$BUN" && exec runc run -d "$id" </dev/null 2>&1 | cat >/dev/null) &
	for _ in $(seq 500); do [ -s "$R/tmp/ctl.ready" ] && break; sleep 0.02; done
	sleep 1
	d=$(dirtier_pid "$id")
	[ -n "$d" ] || { failed "$label" "$mode" "start" /dev/null; return; }
	par=""
	if [ "$mode" != plain ]; then
		"$@" checkpoint --pre-dump --image-path "$I/pre1" "$id" >"$T/err" 2>&1 ||
			{ failed "$label checkpoint" "$mode" "pre-dump 1" "$I/pre1/dump.log"; return; }
		sleep 2
		"$@" checkpoint --pre-dump --parent-path ../pre1 --image-path "$I/pre2" "$id" >"$T/err" 2>&1 ||
			{ failed "$label checkpoint" "$mode" "pre-dump 2" "$I/pre2/dump.log"; return; }
		par="--parent-path ../pre2"
	fi
	ask "$d" USR2 stats || { failed "$label" "$mode" "stats before" /dev/null; return; }
	t0=$(ns)
	# shellcheck disable=SC2086
	"$@" checkpoint $par --image-path "$I/fin" "$id" >"$T/err" 2>&1 ||
		{ failed "$label checkpoint" "$mode" "checkpoint" "$I/fin/dump.log"; return; }
	t1=$(ns)
	row "$label checkpoint" "$mode" "$MB MiB" "$(ms "$t0" "$t1")"
	t0=$(ns)
	# Until runc itself exits (the container's stdout keeps the pipe to
	# cat open), told through a FIFO: no polling, which would take CPU
	# from the restore it times on this 2-core machine.
	rm -f "$T/done"
	mkfifo "$T/done"
	(cd "$BUN" && exec sh -c '"$@"; echo $? >"$0"' "$T/done" "$@" restore -d \
		--image-path "$I/fin" "$id" </dev/null 2>"$T/err" | cat >/dev/null) &
	read -r rc <"$T/done"
	t1=$(ns)
	[ "$rc" = 0 ] && [ -n "$(init_pid "$id")" ] ||
		{ failed "$label restore" "$mode" "restore" "$I/fin/restore.log"; return; }
	row "$label restore" "$mode" "$MB MiB" "$(ms "$t0" "$t1")"
	for _ in $(seq 100); do d=$(dirtier_pid "$id"); [ -n "$d" ] && break; sleep 0.05; done
	sleep 0.2
	gap=""
	ask "$d" USR2 stats && gap=$(awk '$1 == "max_gap_ns" {printf "%.1f ms", $2 / 1e6}' "$R/tmp/ctl.stats")
	ask "$d" USR1 check || true
	case "$(cat "$R/tmp/ctl.check" 2>/dev/null)" in
	ok*) row "$label downtime" "$mode" "$MB MiB" "${gap:-failed}" ;;
	*) row "$label downtime" "$mode" "$MB MiB" "BAD"
	   echo "b_runc: $label ($mode): dirtier says '$(cat "$R/tmp/ctl.check" 2>/dev/null)'" >&2 ;;
	esac
	runc delete -f "$id" >/dev/null 2>&1 || true
	wait
	rm -rf "$I"
}

one "runc+ferry" plain runc --criu "$B/ferry"
one "runc+ferry" "pre-dump x2" runc --criu "$B/ferry"
if ! command -v criu >/dev/null 2>&1; then
	row "runc+criu" "not run" "-" "criu not installed"
elif ! criu check >/dev/null 2>&1; then
	row "runc+criu" "not run" "-" "criu check fails here"
else
	one "runc+criu" plain runc
fi
