#!/bin/sh
# Pre-copy of process trees: every command that takes a PID takes the tree
# under it. A tree of self-checking processes (tests/workloads/treecheck.c:
# a pipeline through a pipe and a socketpair with data always queued, shared
# memory, its own session, a zombie) is
#   1. pre-dumped twice and dumped as separate commands (each process on top
#      of its own previous images; a child forked between the rounds joins
#      the final dump in full), then restored;
#   2. dumped with --iterative;
#   3. migrated with `ferry migrate` to a page server on a second "host"
#      (its own network namespace, its own copies of the program and its
#      libraries) that restores it into a PID namespace of its own;
#   4. sent by pre-dump/dump --page-server, one command each.
# Each time the tree must come back with its PIDs, parents and session, and
# its byte stream go on with no gap and no wrong byte. And when it fails
# (5. the destination cannot restore, 6. ferry is killed mid-migration) the
# original tree must run on, untraced.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../../scripts/twohosts.sh"
TREECHECK="$TOOLS/workloads/treecheck"
PIDS=""
NS_SRC=ferry-tsrc-$$
NS_DST=ferry-tdst-$$
NET=10.198.$(( $$ % 200 ))
DST_IP=$NET.2
cleanup() {
	for p in $PIDS; do kill -9 $p 2>/dev/null; done
	twohosts_down $NS_SRC $NS_DST 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

# start_tree OUT [NETNS]: a treecheck tree; R its root, ALL "R A B C Z".
start_tree() {
	rm -f "$1" "$1".*
	if [ -n "${2:-}" ]; then R=$(ip netns exec "$2" "$TREECHECK" "$1")
	else R=$("$TREECHECK" "$1"); fi
	wait_for "$1.pids" || fail "treecheck did not start"
	ALL=$(cat "$1.pids")
	A=$(echo $ALL | cut -d' ' -f2)
	PIDS="$PIDS $ALL"
	sleep 0.5
}
# same_tree OUT PID...: the processes run again, the root's children with
# the root as parent and session, the zombie a zombie; the stream goes on.
same_tree() {
	out=$1; shift
	n=0
	for p in "$@"; do
		[ -d /proc/$p ] || continue
		[ "$(ps -o sid= -p $p | tr -d ' ')" = "$R" ] && n=$((n + 1))
	done
	[ $n -eq $# ] && ok "all $# processes are back with their PIDs, in the root's session" ||
		fail "$n of $# processes back in session $R"
	Z=$(echo $ALL | cut -d' ' -f5)
	grep -q '^State:.*Z' /proc/$Z/status 2>/dev/null && ok "the zombie is a zombie again" ||
		fail "zombie $Z is not"
	moving "$out" "the restored tree runs and checks itself"
}
# data_pages DIR: the pages of page data a dump holds itself (not its parent's).
data_pages() { "$FERRY" show "$1" 2>/dev/null | sed -n 's/^pagemap:.*: data \([0-9]*\),.*/\1/p'; }
# parent_of DIR: the dump's parent, as `ferry show` gives its chain ("" if none).
parent_of() { "$FERRY" show "$1" 2>/dev/null | awk '/^chain:/ {print $4}'; }

# 1. Separate commands: pre-dump, (a child forked), pre-dump, dump.
mkdir "$T/c" "$T/local"
start_tree "$T/tc"
expect_rc 0 "pre-dump of the tree" "$FERRY" pre-dump -t $R -D "$T/c/p1"
Z=$(echo $ALL | cut -d' ' -f5)
for p in $(echo $ALL | cut -d' ' -f2-4); do
	[ -e "$T/c/p1/pid-$p/inventory.img" ] || fail "no pre-dump of process $p"
done
[ -e "$T/c/p1/pid-$Z" ] && fail "the zombie was pre-dumped" || ok "each live process pre-dumped into pid-PID, the zombie not"
kill -USR2 $R
wait_for "$T/tc.late" || fail "treecheck forked no late child"
L=$(cat "$T/tc.late")
PIDS="$PIDS $L"
sleep 0.3
expect_rc 0 "second pre-dump on top of the first" "$FERRY" pre-dump -t $R -D "$T/c/p2" \
	--prev-images-dir ../p1
# Process A (the pipe's writer) was tracked: its second round copied only
# what it wrote since the first.
n1=$(data_pages "$T/c/p1/pid-$A")
n2=$(data_pages "$T/c/p2/pid-$A")
[ "$n2" -lt "$n1" ] && ok "process $A's second round copied less ($n2 pages) than its first ($n1)" ||
	fail "process $A: second round $n2 pages, first $n1: not tracked"
case "$(parent_of "$T/c/p2/pid-$A")" in
*/p1/pid-$A) ok "each process's parent is its own first round" ;;
*) fail "pid-$A's chain: $("$FERRY" show "$T/c/p2/pid-$A" 2>&1 | grep chain)" ;;
esac
[ -e "$T/c/p2/pid-$L/inventory.img" ] && [ -z "$(parent_of "$T/c/p2/pid-$L")" ] &&
	ok "the late child is in the second round, with no parent" || fail "late child $L: $(ls "$T/c/p2")"
B=$(bytes "$T/tc")
expect_rc 0 "the dump on top of the pre-dumps" "$FERRY" dump -t $R -D "$T/c/d" --prev-images-dir ../p2
all_gone $ALL $L && ok "every process of the tree ended" || fail "a process runs on after the dump"
case "$(parent_of "$T/c/d/pid-$L")" in
*/p2/pid-$L) ok "the late child's final dump is on top of its round" ;;
*) fail "pid-$L's chain: $("$FERRY" show "$T/c/d/pid-$L" 2>&1 | grep chain)" ;;
esac
expect_rc 0 "restore the tree" "$FERRY" restore -D "$T/c/d" -d
same_tree "$T/tc" $ALL $L
[ "$(bytes "$T/tc")" -ge "$B" ] && ok "the stream went on from $B bytes" || fail "stream went back"
kill -9 $R $(echo $ALL | cut -d' ' -f2-4) $L 2>/dev/null
all_gone $ALL $L

# 2. dump --iterative: the rounds and the final dump per process.
start_tree "$T/ti"
expect_rc 0 "dump --iterative of the tree" "$FERRY" dump -t $R -D "$T/i" --iterative --max-rounds 3
[ -e "$T/i/pre-2/pid-$A/inventory.img" ] && ok "round 2 has each process's images" ||
	fail "no $T/i/pre-2/pid-$A: $(ls "$T/i/pre-2" 2>&1)"
case "$(parent_of "$T/i/pid-$A")" in
*pre-*/pid-$A) ok "each process's final dump is on top of its last round" ;;
*) fail "pid-$A's chain: $("$FERRY" show "$T/i/pid-$A" 2>&1 | grep chain)" ;;
esac
all_gone $ALL && ok "every process ended" || fail "a process runs on"
expect_rc 0 "restore it" "$FERRY" restore -D "$T/i" -d
same_tree "$T/ti" $ALL
kill -9 $R $(echo $ALL | cut -d' ' -f2-4) 2>/dev/null
all_gone $ALL

# 3. ferry migrate to another "host" whose files are copies.
twohosts_up $NS_SRC $NS_DST $NET vt$$ || skip "cannot create network namespaces and a veth pair here"
new_key "$T/key"
PORT=$((20000 + ($$ + 7) % 20000))
DST_FILES=$(program_files "$TREECHECK" | tr '\n' ' ')
# server NAME ARGS...: a page server on the destination, restoring into a
# PID namespace of its own (the source's tree holds the PIDs here).
server() {
	name=$1; shift
	# shellcheck disable=SC2086
	"$WITH_COPIES" $DST_FILES -- ip netns exec $NS_DST env ${SFAULT:-} "$FERRY" page-server -D "$T/$name" \
		--address $DST_IP --port $PORT --auth-key "$T/key" --restore --pid-ns \
		--pidfile "$T/$name.pid" -v "$@" >"$T/$name.out" 2>"$T/$name.err" &
	S=$!
	PIDS="$PIDS $S"
	for _ in $(seq 100); do grep -q listening "$T/$name.out" 2>/dev/null && break; sleep 0.05; done
}
# moved NAME: the tree runs there, its root with its PID inside its namespace.
moved() {
	RP=$(cat "$T/$1.pid" 2>/dev/null)
	if [ -z "$RP" ] || [ ! -d /proc/$RP ]; then
		fail "no restored tree on the destination: $(tail -3 "$T/$1.err")"
		return
	fi
	PIDS="$PIDS $RP $(ps -o ppid= -p $RP)"
	[ "$(awk '/^NSpid:/ {print $3}' /proc/$RP/status)" = "$R" ] &&
		ok "the root runs there as $R inside its namespace" || fail "root $RP: $(grep NSpid /proc/$RP/status)"
	[ "$(ps -o pid= --ppid $RP | wc -l)" -eq 4 ] && ok "with its 4 children (the zombie too)" ||
		fail "children there: $(ps -o pid=,stat= --ppid $RP | tr '\n' ' ')"
	[ "$(stat -L -c %i /proc/$RP/exe)" != "$(stat -c %i "$(readlink -f "$TREECHECK")")" ] &&
		ok "it runs the destination's copy of the program (another inode)" ||
		fail "it runs the source's program file"
	grep -q '^State:.*T' /proc/$RP/status && fail "it was left stopped"
	moving "$2" "the migrated tree runs and checks itself"
	kill -9 $(ps -o ppid= -p $RP) 2>/dev/null
}
start_tree "$T/tm" $NS_SRC
server dst
ip netns exec $NS_SRC "$FERRY" migrate -t $R --to $DST_IP:$PORT --auth-key "$T/key" >"$T/out" 2>"$T/err"
rc=$?
[ $rc = 0 ] && ok "migrate the tree" || fail "migrate: exit $rc: $(cat "$T/err")"
wait $S
[ $? = 0 ] && ok "the page server exits 0" || fail "page server: $(tail -3 "$T/dst.err")"
all_gone $ALL && ok "the original tree is gone" || fail "the original tree runs on"
[ -e "$T/dst/pre-1/pid-$A/inventory.img" ] && ok "the rounds arrived with each process's images" ||
	fail "no pre-1/pid-$A on the destination: $(ls "$T/dst" "$T/dst/pre-1" 2>&1 | tr '\n' ' ')"
moved dst "$T/tm"

# 4. pre-dump, pre-dump, dump with --page-server: one connection each.
start_tree "$T/tp" $NS_SRC
server sep
PS="--page-server --address $DST_IP --port $PORT --auth-key $T/key"
expect_rc 0 "pre-dump --page-server of the tree" ip netns exec $NS_SRC "$FERRY" pre-dump -t $R \
	-D "$T/local/p1" $PS
expect_rc 0 "second pre-dump --page-server" ip netns exec $NS_SRC "$FERRY" pre-dump -t $R \
	-D "$T/local/p2" --prev-images-dir ../p1 $PS
expect_rc 0 "dump --page-server" ip netns exec $NS_SRC "$FERRY" dump -t $R -D "$T/local/d" \
	--prev-images-dir ../p2 $PS
wait $S
[ $? = 0 ] && ok "the page server took the rounds and the dump" || fail "page server: $(tail -3 "$T/sep.err")"
all_gone $ALL && ok "the original tree is gone" || fail "the original tree runs on"
[ -e "$T/sep/p2/pid-$A/inventory.img" ] && ok "each round has each process's images there" ||
	fail "no p2/pid-$A: $(ls "$T/sep" 2>&1 | tr '\n' ' ')"
moved sep "$T/tp"

# runs_on OUT WHAT: every process of the tree is alive, untraced and not
# stopped, and the stream goes on.
runs_on() {
	bad=
	for p in $(echo $ALL | cut -d' ' -f1-4); do
		grep -q '^TracerPid:[[:space:]]*0$' /proc/$p/status 2>/dev/null &&
			! grep -q '^State:.*[Tt]' /proc/$p/status || bad="$bad $p"
	done
	[ -z "$bad" ] && ok "$2: every process runs, untraced" || fail "$2: not running or traced:$bad"
	moving "$1" "$2: the tree checks itself"
}

# 5. The destination cannot restore the tree: the migration fails and the
#    original tree runs on; nothing of it is left there.
start_tree "$T/tf" $NS_SRC
SFAULT=FERRY_FAULT=restore-fail-after-memory server rf
ip netns exec $NS_SRC "$FERRY" migrate -t $R --to $DST_IP:$PORT --auth-key "$T/key" >"$T/out" 2>"$T/err"
[ $? = 1 ] && ok "a failed restore of the tree fails the migration" || fail "migrate: $(cat "$T/out")"
expect_in "$T/err" "could not restore" "says the destination could not restore"
wait $S
runs_on "$T/tf" "the original tree after the failed hand-over"
left=$(ps -eo pid=,args= | grep -c "[t]reecheck $T/tf")
[ "$left" -eq 4 ] && ok "no process of the failed restore is left there" ||
	fail "$left treecheck processes of $T/tf (the original has 4 live)"

# 6. ferry itself killed (SIGKILL) in the hand-over, the whole tree frozen
#    and its final dump on the destination, which has not answered yet (and
#    restores nothing: no copy of the tree runs there): the tree runs on,
#    untraced.
SFAULT=FERRY_FAULT=stall-before-result server kd
ip netns exec $NS_SRC "$FERRY" migrate -t $R --to $DST_IP:$PORT --auth-key "$T/key" \
	>"$T/out" 2>"$T/err" &
M=$!
wait_for "$T/kd/inventory.img" || fail "no final dump arrived"
[ -e "$T/kd/pid-$A/inventory.img" ] && ok "the final dump of each process arrived" ||
	fail "no final dump of process $A there"
kill -9 $M
wait $M 2>/dev/null
kill -9 $S 2>/dev/null
wait $S 2>/dev/null
sleep 0.3
runs_on "$T/tf" "the tree after ferry migrate was killed"
finish
