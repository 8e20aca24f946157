#!/bin/sh
# A container with a terminal (`terminal: true`, runc run --console-socket,
# what docker and podman -t give) through runc with ferry as its CRIU: its
# sh runs on /dev/pts/0 of the container's own devpts, whose master the
# console socket's owner (tests/tools/recvtty) holds outside.
#  1. Without --orphan-pts (criu's orphan_pts_master) a dump is refused,
#     naming it, and the container runs on.
#  2. runc checkpoint, then runc restore -d --console-socket to a second
#     receiver: the new master arrives there (ferry's orphan-pts-master
#     callback, forwarded by runc); what is typed into it reaches the sh and
#     its output comes back; the sh has /dev/pts/0 as its controlling
#     terminal again (session leader, foreground group), with `stty -echo`
#     and the window size set on the first master before the checkpoint.
#     Then once more, from the restored container.
#  3. ferry alone: a process on a pty held by script(1), dump --orphan-pts
#     and restore --console-socket; then the same through CRIU's RPC
#     (swrkc): refused without orphan_pts_master, and without
#     notify_scripts at the restore; with both, the master comes in the
#     orphan-pts-master callback.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../../scripts/runcfns.sh"
runc_needs
CTRS=""
PIDS=""
trap 'for c in $CTRS; do runc delete -f "$c" >/dev/null 2>&1; done
for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

B="$T/bundle"
R="$B/rootfs"
. "$(dirname "$0")/../../scripts/bundle.sh"
bundle_rootfs "$R" "$TOOLS/workloads/dirtier" sh sleep cat echo stty tty cut grep ||
	skip "cannot build the container's rootfs"
(cd "$B" && runc spec) || skip "runc spec failed"
# The sh reads lines from its terminal: `q` prints its terminal's state
# (tty, window size, echo, and /proc/1/stat's pgrp, session, tty_nr and
# tpgid), anything else comes back as got:LINE.
python3 - "$B/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = True
c["process"]["args"] = ["sh", "-c", "stty -echo; echo ready; while read l; do case $l in "
    "q) echo \"tty=$(tty)\"; echo \"size=$(stty size)\"; "
    "stty -a | grep -q -- ' -echo ' && echo echo=off || echo echo=on; "
    "echo \"stat=$(cut -d' ' -f5-8 /proc/1/stat)\";; "
    "*) echo \"got:$l\";; esac; done"]
c["root"]["readonly"] = False
json.dump(c, open(sys.argv[1], "w"))
PY
# recv NAME [-w ROWS,COLS]: a console socket $T/NAME.sock; type into
# $T/NAME.in, what the terminal prints in $T/NAME.out.
recv() {
	rn=$1
	shift
	"$TOOLS/tools/recvtty" "$@" "$T/$rn.sock" "$T/$rn.in" "$T/$rn.out" 2>"$T/$rn.err" &
	PIDS="$PIDS $!"
	for _ in $(seq 100); do [ -S "$T/$rn.sock" ] && return 0; sleep 0.05; done
	return 1
}
type_in() { printf '%s\n' "$2" >"$T/$1.in"; }
# The terminal's lines, without the carriage returns onlcr adds.
lines() { tr -d '\r' <"$T/$1.out" 2>/dev/null; }
# seen NAME LINE: LINE (whole) comes out of the terminal within 5 s.
seen() {
	for _ in $(seq 100); do lines "$1" | grep -qxF -- "$2" && return 0; sleep 0.05; done
	return 1
}
# typed NAME TEXT DESC: TEXT reaches the sh and its answer comes back, and
# the terminal does not echo it (stty -echo holds).
typed() {
	type_in "$1" "$2"
	if seen "$1" "got:$2"; then ok "$3"; else fail "$3: $(lines "$1" | tail -3)"; fi
	lines "$1" | grep -qxF -- "$2" && fail "$3: the terminal echoed it (echo is on)" ||
		ok "$3: not echoed (stty -echo kept)"
}
# state NAME DESC: the sh's terminal as it sees it.
state() {
	desc=$2
	type_in "$1" q
	seen "$1" "echo=off" && seen "$1" "tty=/dev/pts/0" && ok "$2: /dev/pts/0, echo off" ||
		fail "$2: $(lines "$1" | tail -5)"
	seen "$1" "size=33 101" && ok "$2: window size 33x101" ||
		fail "$2: window size $(lines "$1" | grep size= | tail -1)"
	# pgrp, session, tty_nr, tpgid: its own session, the terminal its
	# controlling one, its group in the foreground.
	st=$(lines "$1" | sed -n 's/^stat=//p' | tail -1)
	set -- $st
	[ "${1:-}" = 1 ] && [ "${2:-}" = 1 ] && [ "${3:-0}" != 0 ] && [ "${4:-}" = 1 ] &&
		ok "$desc: controlling terminal $3, session 1, foreground group 1" ||
		fail "$desc: /proc/1/stat pgrp session tty_nr tpgid: '$st'"
}

# 1. Refused without --orphan-pts.
C="ferry-tty-$$"
CTRS="$C"
recv c1 -w 33,101 || fail "recvtty did not start"
(cd "$B" && runc run -d --console-socket "$T/c1.sock" "$C" </dev/null >"$T/run.out" 2>&1) ||
	fail "runc run -d --console-socket: $(cat "$T/run.out")"
seen c1 ready && ok "the container runs on its terminal" || fail "no ready: $(lines c1)"
typed c1 hello "typed into the console socket's master"
P=$(init_pid "$C")
expect_rc 1 "ferry dump of the container without --orphan-pts is refused" \
	"$FERRY" dump -t "$P" -D "$T/nopts"
expect_in "$T/err" "--orphan-pts" "the error names --orphan-pts"
typed c1 still "and the container runs on"

# 2. checkpoint, restore on a new terminal; then again.
expect_rc 0 "runc checkpoint of the container with a terminal" \
	runc --criu "$FERRY" checkpoint --image-path "$T/ck" "$C" ||
	grep Error "$T/ck/dump.log"
expect_in "$T/ck/dump.log" "terminal /dev/pts/0 (index 0)" "the dump recorded the terminal"
[ -z "$(init_pid "$C")" ] && ok "the container is gone after the checkpoint" ||
	fail "runc still has the container"
n=2
for ck in ck ck2; do
	recv "c$n" || fail "recvtty $n did not start"
	# runc restore -d exits once the container runs.
	(cd "$B" && timeout 60 runc --criu "$FERRY" restore -d --console-socket "$T/c$n.sock" \
		--image-path "$T/$ck" "$C" </dev/null >"$T/rst.out" 2>&1) &&
		ok "runc restore -d --console-socket from $ck: running as $(init_pid "$C")" ||
		fail "runc restore from $ck: $(cat "$T/rst.out"; grep Error "$T/$ck/restore.log")"
	expect_in "$T/$ck/restore.log" "notify orphan-pts-master (with an fd)" \
		"ferry sent the new master with orphan-pts-master"
	state "c$n" "restored from $ck"
	typed "c$n" "after-$ck" "typed into the new master, after the restore from $ck"
	P=$(init_pid "$C")
	tty_nr=$([ -n "$P" ] && cut -d' ' -f7 /proc/"$P"/stat 2>/dev/null)
	[ -n "$tty_nr" ] && [ "$tty_nr" != 0 ] && ok "the restored init has a terminal ($tty_nr)" ||
		fail "the restored init's tty_nr: '$tty_nr'"
	[ "$ck" = ck2 ] && break
	expect_rc 0 "runc checkpoint of the restored container" \
		runc --criu "$FERRY" checkpoint --image-path "$T/ck2" "$C" ||
		grep Error "$T/ck2/dump.log"
	n=3
done
runc delete -f "$C" >/dev/null 2>&1

# 3. ferry alone, on a pty that script(1) holds.
# on_script NAME: a sh on script(1)'s terminal that answers each line with
# got:LINE and its window size; S its session's leader (the sh, or the
# shell script(1) ran it with), its output in $T/NAME.out.
on_script() {
	mkfifo "$T/$1.hold"
	# script's stdin a FIFO nobody writes: it never sees an end.
	sleep 100000 >"$T/$1.hold" &
	PIDS="$PIDS $!"
	script -q -c "sh -c 'stty -echo rows 22 cols 77; echo ready-$1; while read l; do \
		echo got:\$l; echo size=\$(stty size); done'" /dev/null <"$T/$1.hold" \
		>"$T/$1.out" 2>&1 &
	PIDS="$PIDS $!"
	seen "$1" "ready-$1" || return 1
	S=$(pgrep -f "^sh -c stty -echo rows 22 cols 77; echo ready-$1")
	S=$(cut -d' ' -f6 /proc/"$S"/stat 2>/dev/null)
	[ -n "$S" ]
}
if command -v script >/dev/null 2>&1; then
	on_script s0 || fail "script(1) did not start the sh"
	expect_rc 0 "ferry dump --orphan-pts of a process on script(1)'s terminal" \
		"$FERRY" dump -t "$S" --orphan-pts -D "$T/sd"
	recv s1 || fail "recvtty did not start"
	expect_rc 1 "its restore without --console-socket is refused" "$FERRY" restore -d -D "$T/sd"
	expect_in "$T/err" "--console-socket" "the error names --console-socket"
	expect_rc 0 "ferry restore -d --console-socket" \
		"$FERRY" restore -d -D "$T/sd" --console-socket "$T/s1.sock"
	S2=$(cat "$T/out")
	PIDS="$PIDS $S2"
	typed s1 "hello-cli" "typed into the restored process's new terminal"
	seen s1 "size=22 77" && ok "its window size came back" ||
		fail "window size: $(lines s1 | tail -2)"
	set -- $(cut -d' ' -f5-8 /proc/"$S2"/stat 2>/dev/null)
	[ "$S2" = "$S" ] && [ "${2:-}" = "$S2" ] && [ "${3:-0}" != 0 ] && [ "${4:-}" = "$S2" ] &&
		ok "it leads its session on its new controlling terminal, in the foreground" ||
		fail "restored process's pgrp session tty_nr tpgid: $*"
	kill -9 "$S2" 2>/dev/null

	# The same through the RPC, as a runtime other than runc would ask.
	on_script s2 || fail "script(1) did not start the second sh"
	mkdir -p "$T/rd"
	SWRKC="$TOOLS/tools/swrkc"
	"$SWRKC" "$FERRY" "dump,dir=$T/rd,pid=$S,log=dump.log" >"$T/rpc.out" 2>&1
	expect_in "$T/rpc.out" "dump fail" "an RPC DUMP without orphan_pts_master is refused"
	expect_in "$T/rd/dump.log" "--orphan-pts (criu's orphan_pts_master)" \
		"its Error line names orphan_pts_master"
	kill -0 "$S" 2>/dev/null && ok "and the process runs on" || fail "the process is gone"
	"$SWRKC" "$FERRY" "dump,dir=$T/rd,pid=$S,log=dump.log,orphan" >"$T/rpc.out" 2>&1
	expect_in "$T/rpc.out" "dump ok" "an RPC DUMP with orphan_pts_master"
	"$SWRKC" "$FERRY" "restore,dir=$T/rd,log=restore.log,orphan" >"$T/rpc.out" 2>&1
	expect_in "$T/rpc.out" "restore fail" \
		"an RPC RESTORE with orphan_pts_master but no notify_scripts is refused"
	expect_in "$T/rd/restore.log" "notify_scripts is not set" \
		"its Error line says the master could not reach the runtime"
	"$SWRKC" "$FERRY" "restore,dir=$T/rd,log=restore.log,orphan,notify" >"$T/rpc.out" 2>&1
	expect_in "$T/rpc.out" "notify orphan-pts-master pid=0 fd=tty" \
		"the RPC RESTORE sends the new master with orphan-pts-master"
	expect_in "$T/rpc.out" "restore ok" "and restores the process"
	S3=$(sed -n 's/^restore ok pid=\([0-9]*\).*/\1/p' "$T/rpc.out")
	[ -n "$S3" ] && PIDS="$PIDS $S3" && kill -9 "$S3" 2>/dev/null
else
	skip_case "ferry alone on a terminal: needs script(1) (util-linux)"
fi
finish
