#!/bin/sh
# A container in a network namespace made before it, as containerd or
# CRI-O with CNI run one: config.json names /var/run/netns/NS by path, runc
# sends `external net[INO]:extRootNetNS` on a checkpoint and the
# namespace's fd as inherit_fd extRootNetNS on a restore. NS holds an
# interface with an address (a dummy, else a veth pair with both ends in it).
#  1. checkpoint, restore -d: the restored init is in NS again (same inode),
#     the address visible inside; a pre-dump on the way.
#  2. checkpoint --leave-running: the container runs on, in NS.
#  3. Refusals through the RPC (swrkc, as runc speaks it): an external
#     entry with another inode, a pid[...] entry, each named, the container
#     running on.
#  4. ferry restore of those images without the namespace's fd fails naming
#     the key, with an fd that is no network namespace too; nothing joins NS.
#  5. Without runc: a process under `ip netns exec NS`, ferry dump
#     --external net[INO]:KEY, ferry restore --inherit-fd fd[3]:KEY with NS
#     open at 3: back in NS. A wrong inode and a pid[...] entry refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../../scripts/runcfns.sh"
SWRKC="$TOOLS/tools/swrkc"
runc_needs
command -v ip >/dev/null 2>&1 || skip "needs ip (iproute2)"
CTRS=""
PIDS=""
NS=ferry-net$$
trap 'for c in $CTRS; do runc delete -f "$c" >/dev/null 2>&1; done
for p in $PIDS; do kill -9 $p 2>/dev/null; done; ip netns del $NS 2>/dev/null; rm -rf "$T"' EXIT

ip netns add $NS 2>/dev/null || skip "cannot make a network namespace (ip netns add)"
NSF=/var/run/netns/$NS
if ! ip -n $NS link add d0 type dummy 2>/dev/null; then
	ip -n $NS link add d0 type veth peer name d1 || skip "neither a dummy nor a veth interface"
	ip -n $NS link set d1 up
fi
ip -n $NS addr add 10.77.0.1/24 dev d0 && ip -n $NS link set d0 up ||
	skip "cannot give the interface an address"
INO=$(stat -L -c %i $NSF)

B="$T/bundle"
R="$B/rootfs"
. "$(dirname "$0")/../../scripts/bundle.sh"
bundle_rootfs "$R" "$TOOLS/workloads/dirtier" sh sleep cat echo ip ||
	skip "cannot build the container's rootfs"
(cd "$B" && runc spec) || skip "runc spec failed"
python3 - "$B/config.json" "$NSF" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "dirtier /tmp/ctl --mb 16 --rate 4 --pending-chld & i=0; "
    "while true; do i=$((i+1)); echo $i >/tmp/count; sleep 0.1; done"]
c["root"]["readonly"] = False
for ns in c["linux"]["namespaces"]:
    if ns["type"] == "network":
        ns["path"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))
PY
net_ino() { stat -L -c %i /proc/"$1"/ns/net 2>/dev/null; }
in_ns() { # PID DESC: PID is in NS, and the address shows there
	[ -n "$1" ] && [ "$(net_ino "$1")" = "$INO" ] &&
		ok "$2: in net:[$INO], the namespace of $NSF" ||
		fail "$2: process ${1:-?} is in net:[$(net_ino "${1:-0}")], not net:[$INO]"
}
# The namespace's processes, as the kernel counts them.
ns_pids() { ip netns pids $NS 2>/dev/null | sort | tr '\n' ' '; }

C="ferry-net-$$"
start "$C" || fail "the container did not start"
P=$(init_pid "$C")
in_ns "$P" "the container runs in the namespace config.json names"

# 3. Refusals through the RPC, before anything is frozen.
swrk_dump() { # DESC STEP-OPTIONS
	mkdir -p "$T/bad"
	"$SWRKC" "$FERRY" "dump,dir=$T/bad,log=dump.log,pid=$P,emptyns=0x40000000,$2" \
		>"$T/rpc" 2>"$T/rpc.err"
}
swrk_dump "" "external=net[1]:extRootNetNS"
grep -q "^dump fail .*errno=95 .*net:\[$INO\], not net:\[1\]" "$T/rpc" &&
	ok "an external network namespace of another inode is refused, naming both" ||
	fail "wrong inode: $(cat "$T/rpc" "$T/rpc.err" | head -c 600)"
expect_in "$T/bad/dump.log" "Error (ferry): process $P is in network namespace net:[$INO]" \
	"the Error line is in the log runc points its user at"
advancing "and the container runs on"
PIDINO=$(stat -L -c %i /proc/"$P"/ns/pid)
swrk_dump "" "external=net[$INO]:extRootNetNS,external=pid[$PIDINO]:extRootPidNS"
grep -q "^dump fail .*errno=95 .*external \`pid\[$PIDINO\]:extRootPidNS\` is refused" "$T/rpc" &&
	ok "an external PID namespace is refused by its entry" ||
	fail "pid[...]: $(cat "$T/rpc" "$T/rpc.err" | head -c 600)"
advancing "and the container runs on"
"$SWRKC" "$FERRY" "restore,dir=$T/bad,log=restore.log,external=net[$INO]:extRootNetNS" \
	>"$T/rpc" 2>"$T/rpc.err"
grep -q "^restore fail .*option external" "$T/rpc" &&
	ok "external on a RESTORE is refused (the namespace comes as inherit_fd)" ||
	fail "external on a restore: $(cat "$T/rpc" | head -c 400)"

# 1. pre-dump, checkpoint, restore.
expect_rc 0 "runc checkpoint --pre-dump of the container" runc --criu "$FERRY" checkpoint \
	--pre-dump --image-path "$T/pre" "$C" || tail -n 5 "$T/pre/dump.log"
expect_rc 0 "runc checkpoint --parent-path ../pre" runc --criu "$FERRY" checkpoint \
	--parent-path ../pre --image-path "$T/ck" "$C" || tail -n 5 "$T/ck/dump.log"
expect_in "$T/ck/dump.log" "opt external[0] = \"net[$INO]:extRootNetNS\"" \
	"runc sent the namespace as external"
expect_in "$T/ck/dump.log" "option external is honoured: the network namespace net:[$INO]" \
	"ferry took it"
"$FERRY" show "$T/ck" >"$T/show" 2>&1
expect_in "$T/show" "network external as extRootNetNS" "the images record it (ferry show)"
[ -z "$(init_pid "$C")" ] && ok "the container is gone after the checkpoint" ||
	fail "runc still has the container after the checkpoint"
[ -z "$(ns_pids)" ] && ok "nothing is left in the namespace" || fail "in $NS: $(ns_pids)"
ip -n $NS addr show d0 | grep -q "10.77.0.1/24" && ok "the namespace and its address stay" ||
	fail "the namespace lost its address"

# 4. ferry restore without the namespace's fd, and with a wrong one.
expect_rc 1 "ferry restore without an fd for the key fails" "$FERRY" restore -d -D "$T/ck" \
	--root "$R"
expect_in "$T/err" "external \`extRootNetNS\`: give an fd on the namespace to join for it" \
	"the error names the key"
expect_rc 1 "ferry restore with an fd that is no network namespace fails" sh -c \
	"exec '$FERRY' restore -d -D '$T/ck' --root '$R' --inherit-fd 'fd[3]:extRootNetNS' 3</dev/null"
expect_in "$T/err" "is /dev/null, not a network namespace" "the error says what the fd is"
[ -z "$(ns_pids)" ] && ok "nothing was made in the namespace" || fail "in $NS: $(ns_pids)"

restore_in "$C" "$T/ck"
P2=$(init_pid "$C")
in_ns "$P2" "the restored container's init"
nsenter -t "$P2" -n ip addr show d0 2>&1 | grep -q "inet 10.77.0.1/24" &&
	ok "its address is visible from the namespace" || fail "nsenter ip addr: $(nsenter -t "$P2" -n ip addr 2>&1)"
runc exec "$C" ip addr show d0 >"$T/exec" 2>&1
expect_in "$T/exec" "inet 10.77.0.1/24" "and inside the container (runc exec ip addr)"
advancing "the restored container runs on"
D2=$(dirtier_of "$P2")
in_ns "$D2" "its child the dirtier"
pages_right "$D2"

# 2. --leave-running.
expect_rc 0 "runc checkpoint --leave-running" runc --criu "$FERRY" checkpoint --leave-running \
	--image-path "$T/lr" "$C" || tail -n 5 "$T/lr/dump.log"
advancing "the container runs on after a --leave-running checkpoint"
in_ns "$(init_pid "$C")" "and is still"
"$FERRY" show "$T/lr" >"$T/show" 2>&1
expect_in "$T/show" "network external as extRootNetNS" "the snapshot records the namespace"
runc delete -f "$C" >/dev/null 2>&1

# 5. Without runc.
setsid ip netns exec $NS sleep 100000 </dev/null >/dev/null 2>&1 &
S=$!
PIDS="$PIDS $S"
for _ in $(seq 50); do [ "$(net_ino $S)" = "$INO" ] && grep -q sleep /proc/$S/comm && break; sleep 0.05; done
expect_rc 2 "ferry dump --external pid[...] is a usage error naming it" "$FERRY" dump -t "$S" \
	-D "$T/cli0" --external "pid[$PIDINO]:k"
expect_in "$T/err" "external \`pid[$PIDINO]:k\` is refused" "the error names the entry"
expect_rc 1 "ferry dump --external of another inode is refused" "$FERRY" dump -t "$S" \
	-D "$T/cli0" --external "net[1]:k1"
expect_in "$T/err" "not net:[1], the one named external" "naming both inodes"
gone "$S" && fail "the process did not run on" || ok "and the process runs on"
expect_rc 0 "ferry dump --external net[$INO]:k1 of a process under ip netns exec" "$FERRY" dump \
	-t "$S" -D "$T/cli" --external "net[$INO]:k1"
gone "$S" && ok "the process ended with the dump" || fail "process $S still runs"
expect_rc 1 "ferry restore without --inherit-fd for k1 fails" "$FERRY" restore -d -D "$T/cli"
expect_in "$T/err" "external \`k1\`" "naming the key"
expect_rc 0 "ferry restore --inherit-fd fd[3]:k1 with $NSF at fd 3" sh -c \
	"exec '$FERRY' restore -d -D '$T/cli' --inherit-fd 'fd[3]:k1' 3<'$NSF'"
S2=$(grep -o '[0-9][0-9]*' "$T/out" | head -1)
PIDS="$PIDS $S2"
in_ns "$S2" "the restored process"
grep -q sleep /proc/"$S2"/comm 2>/dev/null && ok "it is the sleep" || fail "process ${S2:-?}: $(cat /proc/"${S2:-0}"/comm 2>&1)"
kill -9 "$S2" 2>/dev/null

[ $fails -eq 0 ] || exit 1
exit 0
