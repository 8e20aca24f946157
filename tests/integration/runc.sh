#!/bin/sh
# Containers through Debian's runc with ferry as its CRIU (`runc --criu`):
# a busybox container whose init (sh) runs a self-checking dirtier and a
# counter, with a hostname, a file in its /dev/shm (tmpfs), and stdout and
# stderr on a pipe, as runtimes give them.
#  1. What ferry cannot take is refused with an Error line runc shows its
#     user, and the container runs on: stdio on a host file (outside the
#     container's mounts), a mount ferry cannot make again, a process
#     joined by `runc exec` (not below the init: it would be lost), an
#     established TCP connection.
#  2. checkpoint, then restore -d: the tree runs again in new namespaces,
#     with the same PIDs inside, its hostname, its tmpfs file, every page
#     of the dirtier right, the counter going on.
#  3. checkpoint --leave-running: the container runs on, the images restore
#     on a "second host": a copy of the bundle (other inodes), another id.
#  4. pre-dump, pre-dump, checkpoint --parent-path: the final dump copies
#     less than the first pre-dump; restore; every page right.
#  5. Migration to a second "host" (network namespaces joined by a veth
#     pair, the bundle copied): runc's --page-server sends two pre-dumps
#     and the final checkpoint to ferry's page server there while the
#     container runs (TLS, the key named in FERRY_AUTH_KEY), and runc
#     restores it there from the server's images.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../../scripts/runcfns.sh"
# (Its own count, advancing, start and restore_in, below, take a bundle.)
runc_needs
CTRS=""
PIDS=""
. "$(dirname "$0")/../../scripts/twohosts.sh"
NS_SRC=ferry-rs$$
NS_DST=ferry-rd$$
trap 'for c in $CTRS; do runc delete -f "$c" >/dev/null 2>&1; done
for p in $PIDS; do kill -9 $p 2>/dev/null; done; twohosts_down $NS_SRC $NS_DST; rm -rf "$T"' EXIT

B="$T/bundle"
R="$B/rootfs"
. "$(dirname "$0")/../../scripts/bundle.sh"
bundle_rootfs "$R" "$TOOLS/workloads/dirtier" sh sleep cat echo hostname mount umount nc ||
	skip "cannot build the container's rootfs"
(cd "$B" && runc spec) || skip "runc spec failed"
python3 - "$B/config.json" "$T/hook.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "echo note-$$ >/dev/shm/note; "
    "dirtier /tmp/ctl --mb 64 --rate 16 --pending-chld & i=0; "
    "while true; do i=$((i+1)); echo $i >/tmp/count; sleep 0.1; done"]
c["root"]["readonly"] = False
c["hostname"] = "ferryctr"
# A prestart hook, as a runtime's network setup would be: it gets the
# container's state (its init's PID) on stdin, at creation and, through
# ferry's setup-namespaces callback, at a restore.
c["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "cat >" + sys.argv[2]]}]}
json.dump(c, open(sys.argv[1], "w"))
PY
# The counter (the container rewrites it: empty for a moment, read again).
count() {
	for _ in 1 2 3 4 5; do
		c=$(cat "$1/rootfs/tmp/count" 2>/dev/null)
		case "$c" in ''|*[!0-9]*) sleep 0.02 ;; *) echo "$c"; return ;; esac
	done
	echo 0
}
advancing() { # BUNDLE DESC
	c0=$(count "$1"); sleep 0.5; c1=$(count "$1")
	[ "$c1" -gt "$c0" ] && ok "$2 (counter $c0 -> $c1)" || fail "$2: counter stuck at $c1"
}
# The dirtier's host PID: the init's child that is not a sleep.
dirtier_pid() {
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		grep -q "^Name:.*dirtier" /proc/"$c"/status 2>/dev/null && echo "$c"
	done
}
nspid() { sed -n 's/^NSpid:.*[[:space:]]\([0-9]*\)$/\1/p' /proc/"$1"/status; }
# selfcheck BUNDLE DESC: SIGUSR1 the container's dirtier, every page right.
selfcheck() {
	d=$(dirtier_pid "$(init_pid "$3")")
	rm -f "$1/rootfs/tmp/ctl.check"
	[ -n "$d" ] && kill -USR1 "$d" && wait_for "$1/rootfs/tmp/ctl.check"
	v=$(verdict "$1/rootfs/tmp/ctl.check")
	case "$v" in ok*) ok "$2 ($v)" ;; *) fail "$2: dirtier says '${v:-nothing}'" ;; esac
}
# start ID [stdout file]: the container from $B, stdio a pipe (or a file).
start() {
	CTRS="$CTRS $1"
	if [ -n "${2:-}" ]; then
		(cd "$B" && runc run -d "$1" </dev/null >"$2" 2>&1)
	else
		(cd "$B" && runc run -d "$1" </dev/null 2>&1 | cat >"$T/$1.out") &
		for _ in $(seq 100); do [ -n "$(init_pid "$1")" ] && break; sleep 0.05; done
	fi
	wait_for "$R/tmp/ctl.ready" && wait_for "$R/tmp/count"
}
# restore_in BUNDLE ID IMAGES: runc restore -d from BUNDLE, stdio a pipe.
restore_in() {
	CTRS="$CTRS $2"
	rm -f "$T/rst.rc"
	# runc restore -d exits once the container runs; its stdout, a pipe, is
	# the container's and stays open, so its status goes to a file.
	( (cd "$1" && runc --criu "$FERRY" restore -d --image-path "$3" "$2" </dev/null 2>"$T/rst.err"
		echo $? >"$T/rst.rc") | cat >"$T/$2.out") &
	for _ in $(seq 300); do [ -s "$T/rst.rc" ] && break; sleep 0.05; done
	[ "$(cat "$T/rst.rc" 2>/dev/null)" = 0 ] && [ -n "$(init_pid "$2")" ] &&
		ok "runc restore -d of $3 from $(basename "$1"): running as $(init_pid "$2")" ||
		fail "runc restore -d of $3: $(cat "$T/rst.err"; tail -3 "$3/restore.log" 2>/dev/null)"
}

# 1. Refusals.
C1="ferry-runc-$$-a"
start "$C1" "$T/run.out" || fail "the container did not start"
advancing "$B" "the container runs"
expect_rc 1 "checkpoint of a container whose stdout is a host file is refused" \
	runc --criu "$FERRY" checkpoint --image-path "$T/ck0" "$C1"
expect_in "$T/ck0/dump.log" "run.out\`, on a mount outside the tree's mount namespace" \
	"the Error line says the fd is outside the container's mounts"
advancing "$B" "and the container runs on"
runc delete -f "$C1" >/dev/null 2>&1
rm -f "$R/tmp/ctl.ready" "$R/tmp/count"

C2="ferry-runc-$$-b"
start "$C2" || fail "the container did not start with a pipe for stdio"
P=$(init_pid "$C2")
D=$(dirtier_pid "$P")
DNS=$(nspid "$D")
# A mount ferry cannot make again, added inside the container.
mkdir -p "$R/mnt"
if nsenter -t "$P" -m /bin/busybox mount -t ramfs ferryram /mnt 2>/dev/null; then
	expect_rc 1 "checkpoint of a container with a ramfs mount is refused" \
		runc --criu "$FERRY" checkpoint --image-path "$T/ck1" "$C2"
	expect_in "$T/ck1/dump.log" "the mount at /mnt (ramfs" "the Error line names the mount"
	advancing "$B" "and the container runs on"
	nsenter -t "$P" -m /bin/busybox umount /mnt
else
	skip_case "a mount ferry cannot make: nsenter could not mount a ramfs in the container"
fi
if runc exec -d --pid-file "$T/ex.pid" "$C2" sleep 1000 && [ -s "$T/ex.pid" ]; then
	expect_rc 1 "checkpoint of a container with a process joined by runc exec is refused" \
		runc --criu "$FERRY" checkpoint --image-path "$T/ck2" "$C2"
	expect_in "$T/ck2/dump.log" "is in the tree's PID namespace but not below its init" \
		"the Error line says the process would be lost"
	kill -9 "$(cat "$T/ex.pid")"
	advancing "$B" "and the container runs on"
else
	skip_case "a process joined by runc exec: runc exec -d failed here"
fi
selfcheck "$B" "the dirtier is intact before the checkpoint" "$C2"
# An established TCP connection, in a container of its own.
B0="$T/tcp"
mkdir -p "$B0"
cp -a "$R" "$B0/rootfs"
python3 - "$B/config.json" "$B0/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
# Both ends keep a stdin that never ends: busybox nc quits at its EOF.
c["process"]["args"] = ["sh", "-c", "sleep 100000 | nc -l -p 5555 >/dev/null & sleep 0.3; "
    "sleep 100000 | nc 127.0.0.1 5555 >/dev/null"]
json.dump(c, open(sys.argv[2], "w"))
PY
C0="ferry-runc-$$-t"
CTRS="$CTRS $C0"
(cd "$B0" && runc run -d "$C0" </dev/null 2>&1 | cat >/dev/null) &
for _ in $(seq 100); do [ -n "$(init_pid "$C0")" ] && break; sleep 0.05; done
sleep 0.6
if grep -q " 01 " /proc/"$(init_pid "$C0")"/net/tcp 2>/dev/null; then
	expect_rc 1 "checkpoint of a container with an established TCP connection is refused" \
		runc --criu "$FERRY" checkpoint --image-path "$T/ck3" "$C0"
	expect_in "$T/ck3/dump.log" "(socket:[" \
		"the Error line names the socket"
	runc state "$C0" 2>/dev/null | grep -q '"status": "running"' &&
		ok "and the container runs on" || fail "the TCP container is not running"
else
	skip_case "an established TCP connection: busybox nc did not connect in the container"
fi
runc delete -f "$C0" >/dev/null 2>&1
# A restore from a directory without images fails, and runc keeps nothing.
mkdir -p "$T/rimg"
echo '["/dev/null","/dev/null","/dev/null"]' >"$T/rimg/descriptors.json"
expect_rc 1 "runc restore from a directory without images fails" sh -c "cd '$B' && exec runc \
	--criu '$FERRY' restore -d --image-path '$T/rimg' '$C2-r' </dev/null"
expect_in "$T/rimg/restore.log" "Error (ferry): restore from" "ferry's Error line is in runc's restore.log"
runc state "$C2-r" >/dev/null 2>&1 && fail "runc keeps a container for the failed restore" ||
	ok "no container is left from the failed restore"

# 2. checkpoint, restore.
expect_rc 0 "runc checkpoint through ferry" runc --criu "$FERRY" checkpoint --image-path "$T/ck" "$C2"
rm -f "$T/hook.json"
[ -z "$(init_pid "$C2")" ] && ok "the container is gone after the checkpoint" ||
	fail "runc still has the container after the checkpoint"
gone "$P" && ok "its init ended" || fail "its init $P still runs"
restore_in "$B" "$C2" "$T/ck"
P2=$(init_pid "$C2")
grep -q "\"pid\": *$P2[,}]" "$T/hook.json" 2>/dev/null &&
	ok "runc's prestart hook ran in the restore (setup-namespaces) with the new init's PID" ||
	fail "prestart hook at the restore: $(cat "$T/hook.json" 2>&1)"
[ "$(nspid "$P2")" = 1 ] && ok "the restored init is PID 1 in its namespace" ||
	fail "restored init: NSpid $(nspid "$P2")"
D2=$(dirtier_pid "$P2")
[ -n "$D2" ] && [ "$(nspid "$D2")" = "$DNS" ] && ok "the dirtier has its PID $DNS inside again" ||
	fail "the dirtier's PID inside: $(nspid "${D2:-0}" 2>/dev/null), was $DNS"
[ "$(nsenter -t "$P2" -u hostname)" = ferryctr ] && ok "the hostname is the container's" ||
	fail "hostname: $(nsenter -t "$P2" -u hostname)"
for ns in mnt uts ipc net pid; do
	[ "$(readlink /proc/"$P2"/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ] ||
		fail "the restored container shares ferry's $ns namespace"
done
ok "the restored container has its own mnt, uts, ipc, net and pid namespaces"
grep -q "^note-1$" /proc/"$P2"/root/dev/shm/note && ok "its /dev/shm file is there (tmpfs content)" ||
	fail "/dev/shm/note: $(cat /proc/"$P2"/root/dev/shm/note 2>&1)"
grep -q " /proc/keys " /proc/"$P2"/mountinfo && grep -q " /proc/acpi ro,.* - tmpfs " /proc/"$P2"/mountinfo && grep -q " /sys ro,.* - sysfs " /proc/"$P2"/mountinfo &&
	ok "its masked paths and read-only sysfs are mounted again" || fail "mounts: $(cat /proc/"$P2"/mountinfo)"
advancing "$B" "the restored container runs on"
selfcheck "$B" "every page of the restored dirtier is right" "$C2"

# 3. --leave-running, and a restore from a copy of the bundle.
expect_rc 0 "runc checkpoint --leave-running" runc --criu "$FERRY" checkpoint --leave-running \
	--image-path "$T/lr" "$C2" || tail -n 15 "$T/lr/dump.log"
advancing "$B" "the container runs on after a --leave-running checkpoint"
runc delete -f "$C2" >/dev/null 2>&1
B2="$T/host2"
cp -a "$B" "$B2"
[ "$(stat -c %i "$B/rootfs/bin/dirtier")" != "$(stat -c %i "$B2/rootfs/bin/dirtier")" ] &&
	ok "the second host's bundle is a copy (other inodes)" || fail "the copy shares inodes"
# The copy's counter is the source's last, ahead of the checkpoint's.
rm -f "$B2/rootfs/tmp/count"
C3="ferry-runc-$$-c"
restore_in "$B2" "$C3" "$T/lr"
advancing "$B2" "the container runs on the second host"
selfcheck "$B2" "every page right on the second host" "$C3"
runc delete -f "$C3" >/dev/null 2>&1

# 4. pre-dump, pre-dump, checkpoint on top.
rm -f "$R/tmp/ctl.ready" "$R/tmp/count"
C4="ferry-runc-$$-d"
start "$C4" || fail "the container did not start again"
expect_rc 0 "runc checkpoint --pre-dump" runc --criu "$FERRY" checkpoint --pre-dump \
	--image-path "$T/pre1" "$C4"
expect_rc 0 "a second --pre-dump on the first" runc --criu "$FERRY" checkpoint --pre-dump \
	--parent-path ../pre1 --image-path "$T/pre2" "$C4"
expect_rc 0 "checkpoint --parent-path ../pre2" runc --criu "$FERRY" checkpoint \
	--parent-path ../pre2 --image-path "$T/fin" "$C4"
first=$(sed -n 's/.*: [0-9]* threads, \([0-9]*\) pages copied.*/\1/p' "$T/pre1/dump.log" | tail -1)
last=$(grep "dumped process .* tracker uffd-wp\|dumped process .* tracker soft-dirty" "$T/fin/dump.log" |
	sed -n 's/.*threads, \([0-9]*\) pages copied.*/\1/p' | tail -1)
[ -n "$last" ] && [ -n "$first" ] && [ "$last" -lt "$first" ] &&
	ok "the final dump copied $last pages, the first pre-dump $first (tracked)" ||
	fail "pages copied: pre-dump '${first:-?}', final '${last:-?}' ($(tail -2 "$T/fin/dump.log"))"
restore_in "$B" "$C4" "$T/fin"
advancing "$B" "the pre-copied container runs again"
selfcheck "$B" "every page right after pre-dumps and the final dump" "$C4"
runc delete -f "$C4" >/dev/null 2>&1

# 5. To a second host through ferry's page server.
NET=10.$((200 + $$ % 50)).$(($$ % 250)).0
NET=${NET%.0}
if twohosts_up $NS_SRC $NS_DST $NET vr$$; then
	new_key "$T/key"
	PORT=$((20000 + ($$ + 11) % 20000))
	rm -f "$R/tmp/ctl.ready" "$R/tmp/count"
	C5="ferry-runc-$$-e"
	start "$C5" || fail "the container did not start for the migration"
	ip netns exec $NS_DST "$FERRY" page-server -D "$T/dst" --address $NET.2 --port $PORT \
		--auth-key "$T/key" -v >"$T/ps.out" 2>"$T/ps.err" &
	S=$!
	PIDS="$PIDS $S"
	for _ in $(seq 100); do grep -q listening "$T/ps.out" 2>/dev/null && break; sleep 0.05; done
	# runc in the host's network namespace only (nsenter --net): `ip netns
	# exec` would also give it a /sys without the cgroup mounts it names.
	ck() { nsenter --net=/run/netns/$NS_SRC env FERRY_AUTH_KEY="$T/key" runc --criu "$FERRY" checkpoint \
		--page-server $NET.2:$PORT "$@" "$C5"; }
	expect_rc 0 "runc checkpoint --pre-dump --page-server to the second host" ck --pre-dump \
		--image-path "$T/m/p1"
	advancing "$B" "the container runs on while its memory is copied"
	expect_rc 0 "a second pre-dump there" ck --pre-dump --parent-path ../p1 --image-path "$T/m/p2"
	expect_rc 0 "the final checkpoint there" ck --parent-path ../p2 --image-path "$T/m/fin"
	wait $S && ok "the page server took the rounds and the checkpoint, and exits 0" ||
		fail "page server: $(tail -3 "$T/ps.err"; grep Error "$T/m/fin/dump.log")"
	[ -z "$(init_pid "$C5")" ] && ok "the container is gone from the source" ||
		fail "the container still runs on the source"
	[ -s "$T/dst/fin/inventory.img" ] && [ -s "$T/dst/p2/inventory.img" ] &&
		ok "the images are on the second host" || fail "no images there: $(ls "$T/dst" | head)"
	# runc's own file from the source, as with CRIU's page server.
	cp "$T/m/fin/descriptors.json" "$T/dst/fin/"
	B3="$T/host3"
	cp -a "$B" "$B3"
	CTRS="$CTRS $C5"
	(cd "$B3" && exec nsenter --net=/run/netns/$NS_DST runc --criu "$FERRY" restore -d --image-path "$T/dst/fin" \
		"$C5" </dev/null 2>"$T/rst5.err" | cat >/dev/null) &
	for _ in $(seq 200); do [ -n "$(init_pid "$C5")" ] && break; sleep 0.05; done
	[ -n "$(init_pid "$C5")" ] && ok "runc restores it on the second host" ||
		fail "restore there: $(cat "$T/rst5.err"; tail -3 "$T/dst/fin/restore.log")"
	advancing "$B3" "the migrated container runs on the second host"
	selfcheck "$B3" "every page of the migrated dirtier is right" "$C5"
else
	skip_case "migration through the page server: cannot create network namespaces here"
fi
finish
