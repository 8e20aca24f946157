#!/bin/sh
# --freeze-cgroup (CRIU's freeze_cgroup, as runc sends it): a tree that is
# a cgroup's processes is frozen through the cgroup's freezer while ferry
# seizes it, then thawed; ptrace holds it for the dump.
#  1. cgroup v1 (/sys/fs/cgroup/freezer): treecheck's self-checking tree
#     (pipe, socketpair, shared memory, a zombie) dumped -R and for real
#     with --freeze-cgroup, the freezer used (ferry's log) and THAWED
#     after, the tree restored with its PIDs and its stream going on; a
#     process with a stopped thread in the cgroup does not hang the dump.
#  2. cgroup v2 (/sys/fs/cgroup/unified, cgroup.freeze): the same.
#  3. A process in the cgroup that is not in the tree, and one of the tree
#     that is not in the cgroup: refused by name, the cgroup THAWED, every
#     process running and untraced.
#  4. ferry SIGKILLed while the cgroup is frozen (FERRY_FAULT point
#     kill-ferry-cgroup-frozen), and at a random moment of a dump: the
#     processes are never left frozen, stopped or traced.
#  5. A path that does not exist, a freezer hierarchy's root, a directory
#     that is no cgroup, a cgroup frozen already: a clear error, nothing
#     touched; pre-dump checks the path only.
#  6. runc (if it is here): `runc --criu ferry checkpoint --leave-running`
#     of a busybox container; its dump.log says the freezer was used.
. "$(dirname "$0")/lib.sh"
TREECHECK="$TOOLS/workloads/treecheck"
FORKTREE="$TOOLS/workloads/forktree"
V1=/sys/fs/cgroup/freezer
V2=/sys/fs/cgroup/unified
CGS=""
CTRS=""
PIDS=""
cleanup() {
	for c in $CTRS; do runc delete -f "$c" >/dev/null 2>&1; done
	for cg in $CGS; do
		[ -e "$cg/freezer.state" ] && echo THAWED >"$cg/freezer.state" 2>/dev/null
		[ -e "$cg/cgroup.freeze" ] && echo 0 >"$cg/cgroup.freeze" 2>/dev/null
		for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	done
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	sleep 0.2
	for cg in $CGS; do rmdir "$cg" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || skip "needs root (cgroups and ptrace)"
[ -e "$V1/cgroup.procs" ] || skip "no cgroup v1 freezer hierarchy at $V1"

# mkcg DIR: a cgroup of the test's own, removed at the end.
mkcg() { mkdir "$1" && CGS="$CGS $1"; }
# state CG: THAWED, FREEZING or FROZEN, for a v1 or a v2 cgroup.
state() {
	if [ -e "$1/freezer.state" ]; then cat "$1/freezer.state"; return; fi
	if [ "$(cat "$1/cgroup.freeze")" = 0 ]; then echo THAWED
	elif grep -q "^frozen 1" "$1/cgroup.events"; then echo FROZEN
	else echo FREEZING; fi
}
thawed() { # CG DESC
	s=$(state "$1")
	[ "$s" = THAWED ] && ok "$2" || fail "$2: the cgroup is $s"
}
# start_in CG PROGRAM ARGS...: the program, which detaches and prints its
# PID (tests/workloads/detach.h), started inside the cgroup.
start_in() {
	cg=$1; shift
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}
# running PID... : alive, no thread stopped or traced, within 2 s.
running() {
	for _ in $(seq 40); do
		bad=
		for p in "$@"; do
			[ -d /proc/$p ] || { bad="$p gone"; break; }
			for s in /proc/$p/task/*/status; do
				st=$(awk '/^State:/ {print $2}' "$s" 2>/dev/null)
				tp=$(awk '/^TracerPid:/ {print $2}' "$s" 2>/dev/null)
				case "$st" in T|t|D|Z) bad="$p state $st" ;; esac
				[ "${tp:-0}" = 0 ] || bad="$p traced by $tp"
			done
		done
		[ -z "$bad" ] && return 0
		sleep 0.05
	done
	echo "$bad"
	return 1
}
all_running() { # DESC PID...
	d=$1; shift
	r=$(running "$@") && ok "$d" || fail "$d: $r"
}
# kids PID: its children.
kids() { ps -o pid= --ppid "$1" | tr -d ' '; }

# tree_case CG LABEL: treecheck in CG, dumped -R then for real through the
# freezer, restored.
tree_case() {
	cg=$1; l=$2
	R=$(start_in "$cg" "$TREECHECK" "$T/tc$l")
	[ -n "$R" ] || { fail "$l: treecheck did not start"; return; }
	wait_for "$T/tc$l.pids" || fail "$l: treecheck wrote no pids"
	ALL=$(cat "$T/tc$l.pids")
	PIDS="$PIDS $ALL"
	sleep 0.5
	moving "$T/tc$l" "$l: the tree runs in its cgroup"
	expect_rc 0 "$l: dump -R --freeze-cgroup" "$FERRY" -v dump -t "$R" -D "$T/snap$l" -R \
		--freeze-cgroup "$cg" || cat "$T/err"
	expect_in "$T/err" "cgroup freezer: freezing $cg" "$l: the tree was frozen through its cgroup"
	expect_in "$T/err" "cgroup freezer: thawed $cg" "$l: and thawed before the dump proper"
	thawed "$cg" "$l: the cgroup is THAWED after dump -R"
	moving "$T/tc$l" "$l: the tree runs on after dump -R"
	all_running "$l: no process of the tree is stopped or traced" $(echo $ALL | cut -d' ' -f1-4)
	expect_rc 0 "$l: dump --freeze-cgroup" "$FERRY" dump -t "$R" -D "$T/d$l" --freeze-cgroup "$cg"
	for p in $ALL; do all_gone "$p" || fail "$l: process $p still runs after the dump"; done
	thawed "$cg" "$l: the cgroup is THAWED (and empty) after the dump"
	[ -z "$(cat "$cg/cgroup.procs")" ] && ok "$l: every process of the cgroup ended" ||
		fail "$l: left in the cgroup: $(cat "$cg/cgroup.procs" | tr '\n' ' ')"
	rm -f "$T/pid"
	expect_rc 0 "$l: restore" "$FERRY" restore -D "$T/d$l" -d --pidfile "$T/pid"
	[ "$(cat "$T/pid" 2>/dev/null)" = "$R" ] && ok "$l: the root has its PID" ||
		fail "$l: root restored as $(cat "$T/pid" 2>/dev/null)"
	n=0
	for c in $(kids "$R"); do echo " $ALL " | grep -q " $c " && n=$((n + 1)); done
	[ $n = 4 ] && ok "$l: its 4 children (the zombie too) have their PIDs" ||
		fail "$l: $n of 4 children restored with their PIDs"
	sleep 0.3
	moving "$T/tc$l" "$l: the restored tree runs and checks itself"
	for p in $ALL; do kill -9 "$p" 2>/dev/null; done
}

# 1. cgroup v1.
C1=$V1/ferry-cgf-$$-1
mkcg "$C1" || skip "cannot make a cgroup under $V1"
tree_case "$C1" v1
# A process with a stopped thread: seized after the thaw, not while frozen.
F=$(start_in "$C1" "$FORKTREE" 4 2)
PIDS="$PIDS $F"
sleep 0.3
K=$(kids "$F" | head -1)
kill -STOP "$K"
sleep 0.1
expect_rc 0 "v1: dump -R with a stopped process in the cgroup" \
	timeout 20 "$FERRY" dump -t "$F" -D "$T/stopped" -R --freeze-cgroup "$C1"
[ "$(awk '/^State:/ {print $2}' /proc/$K/status)" = T ] && ok "v1: the stopped process is stopped still" ||
	fail "v1: process $K: $(grep State /proc/$K/status)"
kill -CONT "$K"
thawed "$C1" "v1: the cgroup is THAWED"
all_running "v1: the tree runs once continued" $F $(kids "$F")

# 2. cgroup v2.
C2=$V2/ferry-cgf-$$-2
if [ -e "$V2/cgroup.procs" ] && mkcg "$C2" && [ -e "$C2/cgroup.freeze" ]; then
	tree_case "$C2" v2
else
	skip_case "cgroup v2: no cgroup.freeze in a cgroup made under $V2"
fi

# 3. The cgroup's processes are not the tree's: refused, thawed, running.
C3=$V1/ferry-cgf-$$-3
mkcg "$C3" || fail "cannot make $C3"
F=$(start_in "$C3" "$FORKTREE" 4 3)
PIDS="$PIDS $F"
sleep 0.3
FK=$(kids "$F" | tr '\n' ' ')
S=$(start_in "$C3" sh -c 'sleep 1000 >/dev/null 2>&1 </dev/null & echo $!')
PIDS="$PIDS $S"
sleep 0.1
expect_rc 1 "a process in the cgroup but not in the tree is refused" \
	"$FERRY" dump -t "$F" -D "$T/stranger" --freeze-cgroup "$C3"
expect_in "$T/err" "process $S (sleep) is in freeze cgroup $C3 but not in the tree" \
	"the refusal names the process"
thawed "$C3" "the cgroup is THAWED after the refusal"
all_running "the tree and the stranger run on, untraced" $F $FK $S
[ -e "$T/stranger/inventory.img" ] && fail "an inventory was written" || ok "nothing was dumped"
kill -9 "$S"
O=$(echo $FK | cut -d' ' -f1)
echo "$O" >"$V1/cgroup.procs"
expect_rc 1 "a process of the tree outside the cgroup is refused" \
	"$FERRY" dump -t "$F" -D "$T/outside" -R --freeze-cgroup "$C3"
expect_in "$T/err" "process $O (forktree) of the tree of process $F is not in freeze cgroup $C3" \
	"the refusal names it"
thawed "$C3" "the cgroup is THAWED after that refusal"
all_running "the tree runs on, untraced" $F $FK
echo "$O" >"$C3/cgroup.procs"

# 4. ferry killed.
expect_rc 137 "ferry SIGKILLed while the cgroup is frozen" \
	env FERRY_FAULT=kill-ferry-cgroup-frozen "$FERRY" -v dump -t "$F" -D "$T/k1" --freeze-cgroup "$C3"
expect_in "$T/err" "cgroup freezer: freezing $C3" "it died with the cgroup frozen"
sleep 0.2
thawed "$C3" "the guard thawed the cgroup ferry left frozen"
all_running "every process runs, untraced" $F $FK
# A larger tree, so that a dump lasts: killed at a random moment of it.
# A kill that lands while a thread runs a syscall ferry injected (a
# "kill-window" its -vv log opened and did not close, docs/SECURITY.md,
# "Signals", as kill.sh counts them) may harm that process: its tree is
# then only checked to be thawed, and started again.
C4=$V1/ferry-cgf-$$-4
mkcg "$C4" || fail "cannot make $C4"
start_g() {
	G=$(start_in "$C4" "$FORKTREE" 128 3)
	PIDS="$PIDS $G"
	sleep 1
	GK=$(kids "$G" | tr '\n' ' ')
}
start_g
for i in 1 2 3 4; do
	"$FERRY" -vv dump -t "$G" -D "$T/k2.$i" -R --freeze-cgroup "$C4" >/dev/null 2>"$T/klog.$i" &
	K=$!
	sleep "0.0$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 10 ))"
	kill -9 "$K" 2>/dev/null
	wait "$K" 2>/dev/null
	sleep 0.2
	thawed "$C4" "kill $i: the cgroup is THAWED"
	win=$(open_windows "$T/klog.$i")
	if [ -n "$win" ]; then
		ok "kill $i landed in kill-window(s) $win: the tree is not checked"
		for p in $G $GK; do kill -9 "$p" 2>/dev/null; done
		start_g
	else
		all_running "kill $i: the tree runs, untraced" $G $GK
	fi
done

# 5. Bad paths, a frozen cgroup: an error naming it, nothing touched.
expect_rc 1 "a path that does not exist" "$FERRY" dump -t "$F" -D "$T/b1" --freeze-cgroup "$V1/ferry-none-$$"
expect_in "$T/err" "freeze cgroup $V1/ferry-none-$$: No such file or directory" "says so"
expect_rc 1 "a freezer hierarchy's root" "$FERRY" dump -t "$F" -D "$T/b2" --freeze-cgroup "$V1"
expect_in "$T/err" "has neither freezer.state (a cgroup v1 freezer cgroup) nor cgroup.freeze" "says there is no freezer"
expect_rc 1 "a directory that is no cgroup" "$FERRY" dump -t "$F" -D "$T/b3" --freeze-cgroup "$T"
expect_in "$T/err" "is not a cgroup directory" "says so"
[ ! -e "$T/b1" ] && [ ! -e "$T/b2" ] && [ ! -e "$T/b3" ] && ok "no images directory was made" ||
	fail "an images directory was made: $(ls -d "$T"/b* 2>/dev/null)"
echo FROZEN >"$C3/freezer.state"
for _ in $(seq 50); do [ "$(state "$C3")" = FROZEN ] && break; sleep 0.02; done
expect_rc 1 "a cgroup frozen already (a paused container)" \
	"$FERRY" dump -t "$F" -D "$T/b4" --freeze-cgroup "$C3"
expect_in "$T/err" "is FROZEN already" "says so"
[ "$(state "$C3")" = FROZEN ] && ok "and leaves it as its owner froze it" || fail "it is $(state "$C3") now"
echo THAWED >"$C3/freezer.state"
all_running "the tree runs after all of them" $F $FK
expect_rc 0 "pre-dump --freeze-cgroup" "$FERRY" -v pre-dump -t "$F" -D "$T/pre" --freeze-cgroup "$C3"
expect_in "$T/err" "a pre-dump does not freeze it" "pre-dump checks the cgroup only"
expect_rc 1 "pre-dump with a bad --freeze-cgroup" "$FERRY" pre-dump -t "$F" -D "$T/pre2" --freeze-cgroup "$V1"
all_running "the tree runs after the pre-dumps" $F $FK

# 6. runc checkpoint --leave-running: runc names its freezer cgroup.
BB=$(command -v busybox || true)
if ! command -v runc >/dev/null 2>&1 || [ -z "$BB" ] || ! ldd "$BB" 2>&1 | grep -q "not a dynamic"; then
	skip_case "runc: needs runc and a static busybox (make deps installs them)"
else
	B="$T/bundle"
	. "$(dirname "$0")/../../scripts/bundle.sh"
	if bundle_rootfs "$B/rootfs" "$FORKTREE" sh sleep && (cd "$B" && runc spec); then
		python3 - "$B/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "forktree 4 2; i=0; while true; do i=$((i+1)); "
    "echo $i >/tmp/count; sleep 0.1; done"]
c["root"]["readonly"] = False
json.dump(c, open(sys.argv[1], "w"))
PY
		ID="ferry-cgf-$$"
		CTRS="$ID"
		(cd "$B" && runc run -d "$ID" </dev/null 2>&1 | cat >"$T/ctr.out") &
		for _ in $(seq 100); do [ -s "$B/rootfs/tmp/count" ] && break; sleep 0.05; done
		expect_rc 0 "runc checkpoint --leave-running through ferry" \
			runc --criu "$FERRY" checkpoint --leave-running --image-path "$T/rk" "$ID"
		expect_in "$T/rk/dump.log" "option freeze_cgroup is honoured: $V1/$ID" \
			"runc's freeze_cgroup is honoured"
		expect_in "$T/rk/dump.log" "cgroup freezer: freezing $V1/$ID (cgroup v1)" \
			"the container was frozen through its freezer cgroup"
		thawed "$V1/$ID" "the container's freezer cgroup is THAWED"
		c0=$(cat "$B/rootfs/tmp/count"); sleep 0.5; c1=$(cat "$B/rootfs/tmp/count")
		[ "$c1" != "$c0" ] && ok "the container runs on (counter $c0 -> $c1)" ||
			fail "the container's counter is stuck at $c1"
		runc delete -f "$ID" >/dev/null 2>&1
	else
		skip_case "runc: cannot build the container's bundle"
	fi
fi
finish
