#!/bin/sh
# A Kubernetes pod's container: its IPC and UTS namespaces are those of the
# pod's pause container, named by path in config.json. runc sends nothing
# for them on a checkpoint (ferry dumps them as the container's own) and
# join_ns {ipc, PATH}, {uts, PATH} on a restore: the restored tree joins
# them, and the dumped hostname is not set in the pod's namespace.
#  1. A "pause" process in new IPC and UTS namespaces (hostname podhost);
#     a busybox container joining them, with its own PID, mount and
#     network namespaces.
#  2. runc checkpoint; the pod's hostname changed meanwhile (podhost2);
#     runc restore -d: the restored init is in the pause's IPC and UTS
#     namespaces (same inodes), `hostname` inside says podhost2, the pod's
#     hostname was not set back, the log says so.
#  3. checkpoint --leave-running: the container runs on in the pod's
#     namespaces; restored again from those images, it is in them again.
#  4. Refusals through the RPC (swrkc, as runc speaks it) on a RESTORE of
#     those images: join_ns pid, join_ns mnt, an ns_file that is no
#     namespace, one of the wrong type; each named, nothing made in the
#     pod's namespaces.
#  5. Without runc: a PID namespace's init in a UTS namespace of its own,
#     ferry dump, ferry restore --join-ns uts:PATH --join-ns ipc:PID joins
#     the pause's (the IPC one although it had none of its own); the usage
#     errors; restored without --join-ns, its own UTS namespace again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../../scripts/runcfns.sh"
SWRKC="$TOOLS/tools/swrkc"
runc_needs
command -v unshare >/dev/null 2>&1 && command -v nsenter >/dev/null 2>&1 ||
	skip "needs unshare and nsenter (util-linux)"
CTRS=""
PIDS=""
trap 'for c in $CTRS; do runc delete -f "$c" >/dev/null 2>&1; done
for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

# 1. The pod's pause container.
setsid unshare --ipc --uts sh -c 'hostname podhost && exec sleep 100000' </dev/null \
	>/dev/null 2>"$T/pause.err" &
PAUSE=$!
PIDS="$PIDS $PAUSE"
for _ in $(seq 100); do grep -q sleep /proc/$PAUSE/comm 2>/dev/null && break; sleep 0.05; done
grep -q sleep /proc/$PAUSE/comm 2>/dev/null ||
	skip "cannot make IPC and UTS namespaces (unshare --ipc --uts): $(cat "$T/pause.err")"
ino() { stat -L -c %i /proc/"$1"/ns/"$2" 2>/dev/null; }
UTSINO=$(ino $PAUSE uts)
IPCINO=$(ino $PAUSE ipc)
[ "$UTSINO" != "$(ino $$ uts)" ] && [ "$IPCINO" != "$(ino $$ ipc)" ] ||
	skip "unshare did not make new namespaces"
pod_host() { nsenter -t $PAUSE -u cat /proc/sys/kernel/hostname; }
# The processes in the pod's UTS namespace, the pause first.
members() {
	for d in /proc/[0-9]*; do
		[ "$(stat -L -c %i "$d/ns/uts" 2>/dev/null)" = "$UTSINO" ] && echo "${d#/proc/}"
	done | sort -n | tr '\n' ' '
}
in_pod() { # PID DESC: in the pause's IPC and UTS namespaces
	if [ -n "$1" ] && [ "$(ino "$1" uts)" = "$UTSINO" ] && [ "$(ino "$1" ipc)" = "$IPCINO" ]; then
		ok "$2: in the pause's uts:[$UTSINO] and ipc:[$IPCINO]"
	else
		fail "$2: process ${1:-?} is in uts:[$(ino "${1:-0}" uts)] ipc:[$(ino "${1:-0}" ipc)]," \
			"not the pause's uts:[$UTSINO] ipc:[$IPCINO]"
	fi
}

B="$T/bundle"
R="$B/rootfs"
. "$(dirname "$0")/../../scripts/bundle.sh"
bundle_rootfs "$R" "$TOOLS/workloads/dirtier" sh sleep cat echo hostname ||
	skip "cannot build the container's rootfs"
(cd "$B" && runc spec) || skip "runc spec failed"
python3 - "$B/config.json" "$PAUSE" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "dirtier /tmp/ctl --mb 8 --rate 4 & i=0; "
    "while true; do i=$((i+1)); echo $i >/tmp/count; sleep 0.1; done"]
c["root"]["readonly"] = False
# The pod's hostname is the pause's: a container of the pod sets none.
c.pop("hostname", None)
for ns in c["linux"]["namespaces"]:
    if ns["type"] in ("ipc", "uts"):
        ns["path"] = "/proc/%s/ns/%s" % (sys.argv[2], ns["type"])
json.dump(c, open(sys.argv[1], "w"))
PY
exec_host() { runc exec "$1" hostname 2>&1; }

C="ferry-pod-$$"
start "$C" || fail "the container did not start: $(cat "$T/$C.out")"
P=$(init_pid "$C")
in_pod "$P" "the container runs in the pod's namespaces config.json names"
[ "$(exec_host "$C")" = podhost ] && ok "its hostname is the pod's (podhost)" ||
	fail "hostname in the container: $(exec_host "$C")"
[ "$(ino "$P" pid)" != "$(ino $PAUSE pid)" ] && [ "$(ino "$P" mnt)" != "$(ino $PAUSE mnt)" ] &&
	ok "with PID and mount namespaces of its own" || fail "the container shares the pause's PID or mount namespace"

# 2. checkpoint, restore.
expect_rc 0 "runc checkpoint of the pod's container" runc --criu "$FERRY" checkpoint \
	--image-path "$T/ck" "$C" || tail -n 5 "$T/ck/dump.log"
[ -z "$(init_pid "$C")" ] && ok "the container is gone after the checkpoint" ||
	fail "runc still has the container after the checkpoint"
[ "$(members)" = "$PAUSE " ] && ok "only the pause is left in the pod's UTS namespace" ||
	fail "in the pod's UTS namespace: $(members)"
"$FERRY" show "$T/ck" >"$T/show" 2>&1
expect_in "$T/show" "podhost" "the images hold the hostname seen at dump time"

# 4. Refusals on a RESTORE of those images, before anything is made.
swrk_restore() { # LOG JOIN...
	log=$1; shift
	j=""
	for a in "$@"; do j="$j,join=$a"; done
	"$SWRKC" "$FERRY" "restore,dir=$T/ck,log=$log,root=$R$j" >"$T/rpc" 2>"$T/rpc.err"
}
refused() { # ERRNO PATTERN DESC
	if grep -q "^restore fail .*errno=$1 .*$2" "$T/rpc"; then ok "$3"; else
		fail "$3: $(cat "$T/rpc" "$T/rpc.err" | head -c 600)"
	fi
}
swrk_restore bad1.log "ipc:/proc/$PAUSE/ns/ipc" "pid:/proc/$PAUSE/ns/pid"
refused 95 "join_ns pid is refused: a PID namespace cannot be joined" \
	"join_ns pid is refused, naming it"
expect_in "$T/ck/bad1.log" "Error (ferry): option join_ns (pid:/proc/$PAUSE/ns/pid)" \
	"the Error line is in the restore's log"
swrk_restore bad2.log "mnt:/proc/$PAUSE/ns/mnt"
refused 95 "join_ns mnt is refused: the tree's mount namespace is built again on --root" \
	"join_ns mnt is refused, naming it"
swrk_restore bad3.log "uts:/proc/$PAUSE/ns/uts" "ipc:/dev/null"
refused 22 "join_ns ipc:/dev/null: /dev/null is /dev/null, not an IPC namespace" \
	"an ns_file that is no namespace is refused, naming it"
swrk_restore bad4.log "ipc:/proc/$PAUSE/ns/uts"
refused 22 "/proc/$PAUSE/ns/uts is uts:\[$UTSINO\], not an IPC namespace" \
	"an ns_file of the wrong type is refused, naming it and what it is"
swrk_restore bad5.log "net:/proc/$PAUSE/ns/nonexistent"
refused 2 "join_ns net:/proc/$PAUSE/ns/nonexistent: open" "an ns_file that is not there is refused"
[ "$(members)" = "$PAUSE " ] && ok "nothing was made in the pod's UTS namespace" ||
	fail "in the pod's UTS namespace: $(members)"
[ "$(pod_host)" = podhost ] && ok "nor was its hostname touched" || fail "pod hostname: $(pod_host)"

# The pod's hostname, changed while the container is away: the restore
# must not set the dumped one back.
nsenter -t $PAUSE -u sh -c 'echo podhost2 >/proc/sys/kernel/hostname'
restore_in "$C" "$T/ck"
P2=$(init_pid "$C")
in_pod "$P2" "the restored container's init"
[ "$(exec_host "$C")" = podhost2 ] && ok "hostname inside says podhost2, the pod's" ||
	fail "hostname in the restored container: $(exec_host "$C")"
[ "$(pod_host)" = podhost2 ] && ok "the pod's hostname was not set to the dumped one" ||
	fail "the pod's hostname is $(pod_host)"
grep "opt join_ns\[" "$T/ck/restore.log" >"$T/sent"
expect_in "$T/sent" "/proc/$PAUSE/ns/ipc" "runc sent join_ns for the pod's IPC namespace"
expect_in "$T/sent" "/proc/$PAUSE/ns/uts" "and for its UTS namespace"
expect_in "$T/ck/restore.log" "option join_ns is honoured: the tree joins uts namespace /proc/$PAUSE/ns/uts" \
	"ferry took runc's join_ns"
expect_in "$T/ck/restore.log" "its dumped hostname \`podhost\` is not set there" \
	"the log says the dumped hostname is not applied"
[ "$(ino "$P2" net)" != "$(ino $PAUSE net)" ] && [ "$(ino "$P2" pid)" != "$(ino $PAUSE pid)" ] &&
	ok "its own network and PID namespaces are made again" || fail "the restored init shares the pause's net or pid namespace"
advancing "the restored container runs on"
D2=$(dirtier_of "$P2")
in_pod "$D2" "its child the dirtier"
pages_right "$D2"

# 3. --leave-running, and its snapshot restored.
expect_rc 0 "runc checkpoint --leave-running" runc --criu "$FERRY" checkpoint --leave-running \
	--image-path "$T/lr" "$C" || tail -n 5 "$T/lr/dump.log"
advancing "the container runs on after a --leave-running checkpoint"
in_pod "$(init_pid "$C")" "and is still"
runc delete -f "$C" >/dev/null 2>&1
[ "$(members)" = "$PAUSE " ] || fail "left in the pod's UTS namespace: $(members)"
restore_in "$C" "$T/lr"
in_pod "$(init_pid "$C")" "the snapshot's restored init"
advancing "and runs on"
runc delete -f "$C" >/dev/null 2>&1

# 5. Without runc: the init of a PID namespace in a UTS namespace of its
# own (and ferry's IPC namespace), joined to the pause's at restore. (A
# process's namespaces are dumped with its PID namespace's init only.)
setsid unshare --pid --fork --uts sh -c 'hostname own && exec sleep 100000' </dev/null \
	>/dev/null 2>&1 &
U=$!
PIDS="$PIDS $U"
S=""
for _ in $(seq 100); do
	S=$(cat /proc/$U/task/$U/children 2>/dev/null | tr -d ' ')
	[ -n "$S" ] && grep -q sleep /proc/$S/comm 2>/dev/null && break
	sleep 0.05
done
PIDS="$PIDS $S"
expect_rc 0 "ferry dump of a PID namespace's init in a UTS namespace of its own" "$FERRY" \
	dump -t "${S:-0}" -D "$T/cli"
"$FERRY" show "$T/cli" >"$T/show" 2>&1
expect_in "$T/show" '"own"' "the images hold its UTS namespace and hostname"
gone "$S" && ok "the process ended with the dump" || fail "process $S still runs"
expect_rc 2 "ferry restore --join-ns pid:... is a usage error" "$FERRY" restore -d -D "$T/cli" \
	--join-ns "pid:/proc/$PAUSE/ns/pid"
expect_in "$T/err" "join_ns pid is refused" "naming the type"
expect_rc 2 "ferry restore --join-ns without a path is a usage error" "$FERRY" restore -d \
	-D "$T/cli" --join-ns uts
expect_rc 1 "ferry restore --join-ns uts:/dev/null fails" "$FERRY" restore -d -D "$T/cli" \
	--join-ns uts:/dev/null
expect_in "$T/err" "/dev/null is /dev/null, not a UTS namespace" "naming the file"
gone "$S" || fail "process $S is back after a failed restore"
expect_rc 0 "ferry restore --join-ns uts:/proc/$PAUSE/ns/uts --join-ns ipc:$PAUSE" "$FERRY" \
	restore -v -d -D "$T/cli" --join-ns "uts:/proc/$PAUSE/ns/uts" --join-ns "ipc:$PAUSE"
S2=$(grep -o '^[0-9][0-9]*' "$T/out" | head -1)
PIDS="$PIDS $S2"
in_pod "$S2" "the restored process"
grep -q sleep /proc/"${S2:-0}"/comm 2>/dev/null && ok "it is the sleep" ||
	fail "process ${S2:-?}: $(cat /proc/"${S2:-0}"/comm 2>&1)"
[ "$(nsenter -t "${S2:-0}" -u cat /proc/sys/kernel/hostname)" = podhost2 ] &&
	ok "it sees the pod's hostname" || fail "hostname seen by $S2: $(nsenter -t "${S2:-0}" -u cat /proc/sys/kernel/hostname)"
[ "$(pod_host)" = podhost2 ] && ok "and the pod's hostname is not its dumped one" ||
	fail "the pod's hostname is $(pod_host)"
expect_in "$T/err" "its dumped hostname \`own\` is not set there" "the log says the hostname is not applied"
expect_in "$T/err" "though it was in no ipc namespace of its own at dump time" \
	"and that the IPC namespace is joined though the process had none of its own"
kill -9 "$S2" 2>/dev/null
# Without --join-ns the same images make a UTS namespace of their own again.
expect_rc 0 "ferry restore of the same images without --join-ns" "$FERRY" restore -d -D "$T/cli"
S3=$(grep -o '^[0-9][0-9]*' "$T/out" | head -1)
PIDS="$PIDS $S3"
[ -n "$S3" ] && [ "$(ino "$S3" uts)" != "$UTSINO" ] && [ "$(ino "$S3" uts)" != "$(ino $$ uts)" ] &&
	[ "$(nsenter -t "$S3" -u cat /proc/sys/kernel/hostname)" = own ] &&
	ok "it is in a new UTS namespace with its dumped hostname" ||
	fail "process ${S3:-?}: uts:[$(ino "${S3:-0}" uts)], hostname $(nsenter -t "${S3:-0}" -u cat /proc/sys/kernel/hostname 2>&1)"
kill -9 "$S3" 2>/dev/null

finish
