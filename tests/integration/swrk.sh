#!/bin/sh
# `ferry swrk FD`: CRIU's RPC as container runtimes speak it. tests/tools/
# swrkc.c is the runtime's side, as runc does it (socketpair, `ferry swrk 3`,
# criu_req after criu_req on one connection, NOTIFY callbacks answered).
# Asked: VERSION, FEATURE_CHECK, CHECK; a PRE_DUMP and a DUMP of a real
# process tree (treecheck, self-checking) into images_dir_fd with a
# log_file, and its RESTORE as the runtime's child (rst_sibling); PRE_DUMP,
# PRE_DUMP, DUMP of one process on one connection; and what is refused: an unknown type, bytes
# that are no criu_req, a process in a namespace ferry does not dump, a
# namespace nested inside the tree,
# tcp_established, a freeze_cgroup that does not exist, a failed callback,
# each named, with the process running
# on and the connection still usable.
. "$(dirname "$0")/lib.sh"
SWRKC="$TOOLS/tools/swrkc"
TREECHECK="$TOOLS/workloads/treecheck"
DIRTIER="$TOOLS/workloads/dirtier"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done
rm -rf "$T"' EXIT

# rpc DESC STEP...: the client's answers in $T/rpc (its stderr, ferry's, in
# $T/rpc.err); the connection itself must work and ferry must end with 0.
rpc() {
	desc=$1; shift
	"$SWRKC" "$FERRY" "$@" >"$T/rpc" 2>"$T/rpc.err"
	rc=$?
	if [ $rc -eq 0 ] && grep -q "^ferry exit 0$" "$T/rpc"; then
		ok "$desc: the connection worked"
	else
		fail "$desc: client exit $rc: $(cat "$T/rpc" "$T/rpc.err" | head -c 600)"
	fi
}
# answer LINE-PREFIX DESC: the client printed a line starting so.
answer() {
	if grep -q "^$1" "$T/rpc"; then ok "$2"; else fail "$2: no \"$1\" in: $(cat "$T/rpc")"; fi
}
# running PID DESC: alive, and not left stopped or traced.
running() {
	st=$(awk '/^State:/ {print $2}' /proc/$1/status 2>/dev/null)
	tr=$(awk '/^TracerPid:/ {print $2}' /proc/$1/status 2>/dev/null)
	case "$st" in
	S|R|D) [ "$tr" = 0 ] && ok "$2" || fail "$2: traced by $tr" ;;
	*) fail "$2: state '${st:-gone}'" ;;
	esac
}

# 1. The questions runtimes ask first. runc needs 3.0 (30000) to checkpoint
#    at all; mem_track must say what `ferry check` says a tracker can do.
rpc "version, features, check" version features check
V=$(awk '/^version ok/ {print $3}' "$T/rpc")
major=${V%%.*}
[ -n "$V" ] && [ "$major" -ge 3 ] && ok "VERSION reports $V, which runc accepts" ||
	fail "VERSION: $(head -c 300 "$T/rpc")"
answer "version ok .* name=ferry" "VERSION names ferry"
# tracks FILE: ferry check --json says a tracker other than page hashes works.
tracks() {
	python3 -c 'import json, sys
u = json.load(open(sys.argv[1]))["backends"]["tracker"]["usable"]
sys.exit(0 if set(u) & {"uffd-wp", "soft-dirty"} else 1)' "$1"
}
"$FERRY" check --json >"$T/check.json" 2>/dev/null
if tracks "$T/check.json"; then
	answer "features ok mem_track=1 lazy_pages=0" "FEATURE_CHECK: mem_track where ferry tracks, no lazy_pages"
else
	answer "features ok mem_track=0 lazy_pages=0" "FEATURE_CHECK: no mem_track without a tracker"
fi
answer "check ok" "CHECK succeeds here"
# Forced: the kernel's trackers hidden, as on a kernel without them.
export FERRY_HIDE_FEATURES=uffd_wp_async,soft_dirty
rpc "features, trackers hidden" features
unset FERRY_HIDE_FEATURES
answer "features ok mem_track=0 lazy_pages=0" "FEATURE_CHECK: no mem_track when neither uffd-wp nor soft-dirty works"

# 2. Refusals that keep the connection: an unknown type, a packet that is no
#    criu_req, a truncated one; VERSION still answered after each.
rpc "bad requests" type=77 version garbage version truncated version type=11 version
answer "type=77 fail type=77 errno=95 msg=request type 77 is not supported" "an unknown type is refused by name"
answer "type=11 fail type=11 errno=95 msg=request WAIT_PID is not supported" "a CRIU type ferry does not serve is refused by name"
answer "garbage fail type=0 errno=74 msg=.*not a criu_req" "bytes that are no criu_req: a clear error"
answer "truncated fail type=0 errno=74 msg=.*not a criu_req" "a truncated request: a clear error"
[ "$(grep -c '^version ok' "$T/rpc")" = 4 ] && ok "the connection served VERSION after every bad request" ||
	fail "VERSION answers: $(grep -c '^version ok' "$T/rpc") of 4"
expect_rc 1 "swrk on an fd that is no socket fails" "$FERRY" swrk 0
expect_in "$T/err" "not a socket" "and says so"
expect_rc 2 "swrk without FD is a usage error" "$FERRY" swrk

# 3. A DUMP of a real process tree, as runc asks for one: images_dir_fd,
#    log_file at runc's level 4, notify_scripts; options runc sets that
#    ferry ignores are noted in the log.
R=$("$TREECHECK" "$T/tc")
[ -n "$R" ] || { fail "treecheck did not start"; finish; }
PIDS="$R"
wait_for "$T/tc.pids" || fail "treecheck wrote no pids"
ALL=$(cat "$T/tc.pids")
PIDS="$ALL"
sleep 0.5
moving "$T/tc" "the tree runs before any dump"
# A PRE_DUMP of the tree, then the DUMP on top of it (parent_img relative
# to the images directory, as runc sends it): main pre-copies trees.
mkdir -p "$T/tp" "$T/d"
rpc "pre-dump of the tree" "pre_dump,dir=$T/tp,log=pre.log,pid=$R"
answer "pre_dump ok type=4" "PRE_DUMP of the tree"
moving "$T/tc" "the tree runs on after its pre-dump"
rpc "dump of the tree" "dump,dir=$T/d,log=dump.log,pid=$R,parent=../tp,notify,extmnt=/k:/v"
answer "notify pre-dump pid=0" "DUMP: pre-dump callback"
answer "notify post-dump pid=0" "DUMP: post-dump callback"
answer "dump ok type=1" "DUMP of the tree succeeds"
sed -n '/^notify pre-dump/,$p' "$T/rpc" | grep -q "^notify post-dump" && ok "pre-dump comes before post-dump" ||
	fail "callback order: $(cat "$T/rpc")"
[ -s "$T/d/inventory.img" ] && ok "the images are in the runtime's images_dir_fd" || fail "no inventory in $T/d"
[ -s "$T/d/dump.log" ] && ok "log_file written in the images directory" || fail "no $T/d/dump.log"
expect_in "$T/d/dump.log" "opt images_dir_fd = " "the log records the request's options (level 4)"
expect_in "$T/d/dump.log" "opt ext_mnt[0] = " "ext_mnt is read (it names a container's external mounts)"
pp=$(sed -n 's/.* \([0-9]*\) in parent.*/\1/p' "$T/d/dump.log" | tail -1)
[ "${pp:-0}" -gt 0 ] && ok "the tree's dump left $pp unchanged pages in its pre-dump" ||
	fail "the tree's dump has no pages in parent: $(grep -i parent "$T/d/dump.log" | tail -2)"
expect_rc 0 "the tree's chain verifies" "$FERRY" show --verify "$T/d"
for p in $ALL; do all_gone $p || fail "process $p still runs after the dump"; done
ok "every process of the tree ended"

# 4. RESTORE with rst_sibling: the restored root is the runtime's child, its
#    PID in the answer; the stream goes on from where it was.
rpc "restore of the tree" "restore,dir=$T/d,log=restore.log,notify,sibling"
answer "restore ok pid=$R parent=client" "RESTORE: the root has its PID and is the runtime's child"
answer "notify post-restore pid=$R" "post-restore callback carries the restored PID"
answer "notify post-resume" "post-resume callback"
answer "notify setup-namespaces pid=$R" "setup-namespaces callback with the root's PID"
answer "notify post-setup-namespaces pid=$R" "post-setup-namespaces callback"
answer "notify pre-resume" "pre-resume callback"
order=$(grep "^notify" "$T/rpc" | cut -d' ' -f2 | tr '\n' ' ')
[ "$order" = "pre-restore setup-namespaces post-setup-namespaces pre-resume post-restore post-resume " ] &&
	ok "the restore's callbacks come in CRIU's order" || fail "callback order: $order"
expect_in "$T/d/restore.log" "as the runtime's child" "restore.log says how it was restored"
moving "$T/tc" "the restored tree's stream goes on"
for p in $ALL; do kill -9 $p 2>/dev/null; done
all_gone $ALL
# A failed setup-namespaces (a runtime's hook) fails the restore: nothing is
# left of the tree, and the images restore again.
# (The killed root was the runtime's child, rst_sibling: the runtime reaps
# it, here when the client ends, so the next restore is a new connection.)
rpc "restore, its setup-namespaces failing" "restore,dir=$T/d,log=restore2.log,notify,sibling,failnotify=setup-namespaces"
answer "restore fail type=2 .*setup-namespaces callback failed" "a failed setup-namespaces fails the restore"
all_gone $ALL
rpc "restore again" "restore,dir=$T/d,log=restore3.log,notify,sibling"
answer "restore ok pid=$R" "and the next RESTORE brings the tree back"
running $R "the tree restored after the failure runs (its stream restarts from the dump, so it is not compared)"
for p in $ALL; do kill -9 $p 2>/dev/null; done

# 5. PRE_DUMP, PRE_DUMP, DUMP on one connection, of one process, each round
#    on top of the last (parent_img relative to the images directory, as
#    runc sends it); then RESTORE, and every page is right.
rm -f "$T/w".*
"$DIRTIER" "$T/w" --mb 16 --rate 16 </dev/null >/dev/null 2>&1 &
D=$!
PIDS="$PIDS $D"
wait_for "$T/w.ready" || fail "dirtier did not start"
mkdir -p "$T/c/p1" "$T/c/p2" "$T/c/d"
rpc "pre-dump, pre-dump, dump" "pre_dump,dir=$T/c/p1,log=pre.log,pid=$D" \
	"pre_dump,dir=$T/c/p2,log=pre.log,pid=$D,parent=../p1" \
	"dump,dir=$T/c/d,log=dump.log,pid=$D,parent=../p2,notify"
answer "pre_dump ok" "PRE_DUMP 1"
[ "$(grep -c '^pre_dump ok' "$T/rpc")" = 2 ] && ok "PRE_DUMP 2 on the same connection" ||
	fail "pre-dumps: $(cat "$T/rpc")"
answer "dump ok" "DUMP on top of them, same connection"
expect_in "$T/c/p2/pre.log" "pre-dumped process $D" "pre-dump 2 logged"
grep -q "copying every page" "$T/c/p2/pre.log" "$T/c/d/dump.log" &&
	fail "tracking was lost between the rounds" || ok "the tracker carried over between rounds"
pp=$(sed -n 's/.* \([0-9]*\) in parent.*/\1/p' "$T/c/d/dump.log" | tail -1)
[ "${pp:-0}" -gt 0 ] && ok "the final dump left $pp unchanged pages in its parent" ||
	fail "the final dump has no pages in parent: $(grep -i parent "$T/c/d/dump.log" | tail -2)"
expect_rc 0 "the chain verifies" "$FERRY" show --verify "$T/c/d"
reap $D
rpc "restore of the pre-copied process" "restore,dir=$T/c/d,log=restore.log,sibling"
RP=$(sed -n 's/^restore ok pid=\([0-9]*\).*/\1/p' "$T/rpc")
if [ -n "$RP" ]; then
	PIDS="$PIDS $RP"
	check_mem "$T/w" $RP "every page right after pre-dump, pre-dump, dump and restore over RPC"
	kill -9 $RP 2>/dev/null
else
	fail "restore: $(cat "$T/rpc")"
fi

# 5b. inherit_fd, as runc sends it for a container whose stdio were pipes:
#     a process writing into a pipe read outside it is dumped, and restored
#     with the runtime's new pipe (an fd ferry inherits) in place of it.
pipe_writer "$T/ih"
mkdir -p "$T/ih/d"
rpc "dump of a process writing into a pipe" "dump,dir=$T/ih/d,log=dump.log,pid=$H"
answer "dump ok" "DUMP of a process whose stdout is a pipe read outside it"
cat "$T/ih/f" >"$T/ih/out2" &
CAT=$!
PIDS="$PIDS $CAT"
"$SWRKC" "$FERRY" "restore,dir=$T/ih/d,log=restore.log,sibling,inherit=4:$KEY" \
	>"$T/rpc" 2>"$T/rpc.err" 4>"$T/ih/f"
answer "restore ok pid=$H " "RESTORE with inherit_fd fd 4 for $KEY"
sleep 0.5
[ "$(grep -c '^tick$' "$T/ih/out2")" -gt 2 ] && [ -d /proc/$H ] &&
	ok "it writes on into the runtime's new pipe" ||
	fail "into the new pipe: $(wc -l <"$T/ih/out2") lines; $(cat "$T/rpc")"
kill -9 $H $CAT 2>/dev/null
rpc "inherit_fd not passed" "restore,dir=$T/ih/d,log=restore2.log,inherit=9:$KEY"
answer "restore fail type=2 errno=9 msg=inherit_fd 9 (for pipe:.*) is not open in ferry" \
	"an inherit_fd ferry was not given is refused by name"

# 6. Refused before anything is frozen, named, the process running on, the
#    error in the log as an "Error" line runtimes quote.
sleep 600 </dev/null >/dev/null 2>&1 &
S=$!
PIDS="$PIDS $S"
mkdir -p "$T/r1" "$T/r2" "$T/r3" "$T/r4" "$T/r5"
NOCG=/sys/fs/cgroup/freezer/ferry-none-$$
rpc "tcp_established, a bad freeze_cgroup and failed callbacks" "dump,dir=$T/r1,log=dump.log,pid=$S,tcp" \
	"dump,dir=$T/r5,log=dump.log,pid=$S,freeze=$NOCG" \
	"dump,dir=$T/r2,log=dump.log,pid=$S,leave,notify,failnotify=pre-dump" \
	"dump,dir=$T/r4,log=dump.log,pid=$S,notify,failnotify=post-dump" \
	"dump,dir=$T/r3,log=dump.log,pid=$S,leave"
# freeze_cgroup is honoured (a real freezer: cgfreeze.sh): a path that is
# none is an error naming it.
answer "dump fail type=1 errno=2 msg=.*freeze cgroup $NOCG: No such file" \
	"a freeze_cgroup that does not exist is refused, naming it"
expect_in "$T/r5/dump.log" "option freeze_cgroup is honoured" "freeze_cgroup: honoured, and said so"
answer "dump fail type=1 errno=95 msg=option tcp_established is refused" "tcp_established is refused by name"
expect_in "$T/r1/dump.log" "Error (ferry): option tcp_established is refused" "the refusal is an Error line in the log"
answer "dump fail type=1 .*pre-dump callback failed" "a failed pre-dump callback fails the dump"
[ -e "$T/r2/inventory.img" ] && fail "a dump went on after its pre-dump callback failed" ||
	ok "nothing was dumped after the failed callback"
answer "dump fail type=1 .*the process was resumed: the runtime reported that its post-dump callback failed" \
	"a failed post-dump callback (the process still frozen) resumes it"
answer "dump ok" "the next request on the connection still works"
running $S "the process runs on, neither stopped nor traced"

# Namespaces ferry does not dump (cgroup, user, time) are refused before
# anything is frozen; a container's (PID, mount, UTS, IPC, network) are
# dumped: tests/integration/runc.sh.
if unshare -C true 2>/dev/null; then
	unshare -C sleep 600 </dev/null >/dev/null 2>&1 &
	U=$!
	PIDS="$PIDS $U"
	sleep 0.3
	mkdir -p "$T/n1"
	rpc "a process in its own cgroup namespace" "dump,dir=$T/n1,log=dump.log,pid=$U,notify"
	answer "dump fail type=1 errno=95 msg=process $U is in namespaces of its own that ferry does not dump yet (cgroup)" \
		"DUMP of a process in another cgroup namespace is refused, naming it"
	grep -q "^notify" "$T/rpc" && fail "a callback ran before the refusal" || ok "refused before any callback"
	expect_in "$T/n1/dump.log" "Error (ferry): process $U is in namespaces of its own that ferry does not dump yet (cgroup)" \
		"the namespace refusal is an Error line in the log"
	running $U "the process in its own namespace runs on"
else
	skip_case "the cgroup namespace refusal: unshare -C is not allowed here"
fi
if unshare -p -f --mount-proc true 2>/dev/null; then
	unshare -p -f --mount-proc sleep 600 </dev/null >/dev/null 2>&1 &
	U2=$!
	PIDS="$PIDS $U2"
	sleep 0.3
	IN=$(awk -v p=$U2 '$4 == p {print $1}' /proc/[0-9]*/stat 2>/dev/null | head -1)
	# The namespace's init outlives a killed unshare: killed by the trap too.
	PIDS="$PIDS $IN"
	mkdir -p "$T/n2"
	rpc "a container-like tree (PID and mount namespaces)" "pre_dump,dir=$T/n2,log=pre.log,pid=$U2" \
		"dump,dir=$T/n2,log=dump.log,pid=$U2"
	# unshare stays in ferry's PID namespace; its child is the init of
	# another: a namespace nested inside the tree.
	answer "pre_dump fail type=4 errno=95 msg=process $IN, a descendant of $U2, is in namespaces of its own (pid): nested" \
		"PRE_DUMP of unshare -p -f names the nested PID namespace"
	answer "dump fail type=1 errno=95 msg=process $IN, a descendant of $U2, is in namespaces of its own (pid): nested" \
		"DUMP is refused the same way"
	running $U2 "unshare runs on"
	[ -n "$IN" ] && running $IN "the process in the new PID namespace runs on"
else
	skip_case "the PID namespace refusal: unshare -p is not allowed here"
fi

# Real runc with ferry as its CRIU: tests/integration/runc.sh.
finish
