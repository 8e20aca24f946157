#!/bin/sh
# Process trees: a tree of self-checking processes (tests/workloads/
# treecheck.c: a pipeline through a pipe and a stream socketpair with data
# always queued in both, datagrams, shared memory, its own session and
# group, a zombie) is dumped with --leave-running, then for real, and
# restored with the same PIDs, parents, group and session; its byte stream
# must go on with no gap and no wrong byte. What a tree round does not take
# is refused before anything is frozen, and the tree runs on. Pre-dumps,
# iterative dumps and migrations of trees: treemig.sh.
. "$(dirname "$0")/lib.sh"
TREECHECK="$TOOLS/workloads/treecheck"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

# ids PID...: "pid ppid pgid sid Z|live" of each, one line each.
ids() { for p in "$@"; do ps -o pid=,ppid=,pgid=,sid=,stat= -p "$p" | awk '{print $1, $2, $3, $4, substr($5, 1, 1) == "Z" ? "Z" : "live"}'; done; }
R=$("$TREECHECK" "$T/tc")
[ -n "$R" ] || { fail "treecheck did not start"; exit 1; }
PIDS="$R"
wait_for "$T/tc.pids" || fail "treecheck wrote no pids"
set -- $(cat "$T/tc.pids")
ALL="$*"
PIDS="$ALL"
sleep 0.5
moving "$T/tc" "the tree runs before any dump"
ids $ALL >"$T/ids.before"
for p in $(echo $ALL | cut -d' ' -f1-4); do ls /proc/$p/fd | sort >"$T/fd.$p"; done

# 1. --tree=no takes the root alone: its socket's peer is then outside
#    what is dumped, which is refused; the tree is untouched. (Pre-dumps
#    and migrations of trees: treemig.sh.)
expect_rc 1 "--tree=no on the tree's root is refused" "$FERRY" dump -t $R --tree=no -D "$T/one" -R
expect_in "$T/err" "outside the dumped tree" "a socket whose peer is left out is named"
moving "$T/tc" "the tree runs on after the refusals"

# 2. A live snapshot: everything frozen together, then let go.
expect_rc 0 "dump -R of the tree" "$FERRY" dump -t $R -D "$T/snap" -R
for p in $(echo $ALL | cut -d' ' -f2-4); do
	[ -d "$T/snap/pid-$p" ] && ok "process $p has its own images" || fail "no $T/snap/pid-$p"
done
[ -e "$T/snap/tree.img" ] && ok "tree.img written" || fail "no tree.img"
moving "$T/tc" "the tree runs on after dump -R"

# 3. The real dump ends every process of the tree.
expect_rc 0 "dump of the tree" "$FERRY" dump -t $R -D "$T/d"
B=$(bytes "$T/tc")
for p in $ALL; do all_gone $p || fail "process $p still runs after the dump"; done
ok "every process of the tree ended"

# 4. Restored: the same PIDs, parents (the root's is ferry's caller, the
#    subreaper), groups, sessions; the zombie a zombie; the stream going on
#    from where it was.
rm -f "$T/pid"
expect_rc 0 "restore the tree" "$FERRY" restore -D "$T/d" -d --pidfile "$T/pid"
[ "$(cat "$T/pid" 2>/dev/null)" = "$R" ] && ok "the root has its PID" || fail "root restored as $(cat "$T/pid")"
ids $ALL >"$T/ids.after"
# The root's parent changes (ferry's caller); the rest must not.
cut -d' ' -f1,3- "$T/ids.before" >"$T/a"
cut -d' ' -f1,3- "$T/ids.after" >"$T/b"
cmp -s "$T/a" "$T/b" && ok "same PIDs, groups, sessions and states" ||
	fail "ids differ: $(diff "$T/a" "$T/b" | tr '\n' ' ')"
tail -n +2 "$T/ids.before" | cut -d' ' -f2 | sort -u >"$T/a"
tail -n +2 "$T/ids.after" | cut -d' ' -f2 | sort -u >"$T/b"
[ "$(cat "$T/b")" = "$R" ] && cmp -s "$T/a" "$T/b" && ok "every other process is the root's child again" ||
	fail "parents: $(cat "$T/b" | tr '\n' ' ')"
Z=$(echo $ALL | cut -d' ' -f5)
[ "$(ids $Z | cut -d' ' -f5)" = Z ] && ok "the zombie is a zombie again" || fail "zombie $Z: $(ids $Z)"
sleep 0.5
A=$(bytes "$T/tc")
[ "$A" -ge "$B" ] && ok "the stream went on from $B bytes" || fail "stream at $A, was $B before the dump"
moving "$T/tc" "the restored tree runs and checks itself"
# Nothing of ferry's in any process: the fds are the dumped ones.
nfd=0
for p in $(echo $ALL | cut -d' ' -f1-4); do
	ls /proc/$p/fd | sort | cmp -s - "$T/fd.$p" || { fail "process $p: fds $(ls /proc/$p/fd | tr '\n' ' '), dumped with $(tr '\n' ' ' <"$T/fd.$p")"; nfd=1; }
done
[ $nfd = 0 ] && ok "every process holds exactly its dumped fds"

# 5. The same PIDs are taken: a second restore says so and creates nothing.
expect_rc 1 "a second restore while the tree runs" "$FERRY" restore -D "$T/d" -d
expect_in "$T/err" "is in use" "the refusal names the PID in use"
moving "$T/tc" "the restored tree is unharmed by the refused restore"

# 5b. --pid-ns: a snapshot restored beside its running original, twice,
#     each copy in its own PID namespace with the dumped PIDs inside it.
expect_rc 0 "snapshot the running tree" "$FERRY" dump -t $R -D "$T/snapns" -R
for copy in 1 2; do
	expect_rc 0 "restore copy $copy with --pid-ns while the original runs" \
		"$FERRY" restore -D "$T/snapns" -d --pid-ns
	C=$(cat "$T/out")
	PIDS="$PIDS $C"
	inner=$(awk '/^NSpid:/ {print $3}' /proc/$C/status 2>/dev/null)
	[ "$inner" = "$R" ] && ok "copy $copy: the root is $R inside its namespace ($C out here)" ||
		fail "copy $copy: root $C has NSpid $(grep NSpid /proc/$C/status 2>/dev/null)"
	n=0
	for c in $(ps -o pid= --ppid $C); do
		in=$(awk '/^NSpid:/ {print $3}' /proc/$c/status)
		echo " $ALL " | grep -q " $in " && n=$((n + 1))
	done
	[ $n -eq 4 ] && ok "copy $copy: its 4 children (the zombie too) have their dumped PIDs inside" ||
		fail "copy $copy: $n of 4 children with their PIDs"
	I=$(ps -o ppid= -p $C | tr -d ' ')
	[ "$(cat /proc/$I/comm 2>/dev/null)" = ferry-init ] && ok "copy $copy: under ferry's init" ||
		fail "copy $copy: parent $I is $(cat /proc/$I/comm 2>/dev/null)"
	eval "NSINIT$copy=$I"
done
moving "$T/tc" "the original and both copies run"
kill -9 $NSINIT1 $NSINIT2
sleep 0.3
moving "$T/tc" "the original runs on once the copies' namespaces are killed"

# 6. A restored tree dumps and restores again.
expect_rc 0 "dump the restored tree" "$FERRY" dump -t $R -D "$T/d2"
for p in $ALL; do all_gone $p; done
expect_rc 0 "restore it again" "$FERRY" restore -D "$T/d2" -d
sleep 0.5
moving "$T/tc" "the twice-restored tree still checks out"

# 6b. A PID of the tree held by an unrelated process: the restore fails,
#     and never kills that process (it is not ferry's).
expect_rc 0 "dump the tree again" "$FERRY" dump -t $R -D "$T/d3"
for p in $ALL; do all_gone $p; done
C=$(echo $ALL | cut -d' ' -f4)
"$TOOLS/tools/holdpid" $C && PIDS="$PIDS $C"
if [ -d /proc/$C ]; then
	expect_rc 1 "a restore whose child's PID is held by another process" "$FERRY" restore -D "$T/d3" -d
	expect_in "$T/err" "$C" "the refusal names the PID"
	[ -d /proc/$C ] && ! gone $C && ok "the unrelated process holding PID $C lives on" ||
		fail "ferry killed the process holding PID $C"
	for p in $(echo $ALL | cut -d' ' -f1-3); do gone $p || fail "process $p of the failed restore is left"; done
	kill -9 $C
	all_gone $C
else
	fail "holdpid could not take PID $C"
fi
expect_rc 0 "the tree restores once its PIDs are free" "$FERRY" restore -D "$T/d3" -d
sleep 0.5
moving "$T/tc" "the tree checks out after the failed restore"

# 7. A process without stdio comes back without it (none of ferry's).
sh -c 'exec 0<&- 1>&- 2>&- 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- sleep 1000' &
S=$!
PIDS="$PIDS $S"
sleep 0.2
ls /proc/$S/fd | sort >"$T/fd.nofd"
expect_rc 0 "dump a process with no fds 0-2" "$FERRY" dump -t $S -D "$T/nofd"
reap $S
expect_rc 0 "restore it with ferry's stdio open" "$FERRY" restore -D "$T/nofd" -d
! grep -qx '[012]' "$T/fd.nofd" && ls /proc/$S/fd | sort | cmp -s - "$T/fd.nofd" &&
	ok "it holds no fd 0-2, only what it had" ||
	fail "it holds: $(ls /proc/$S/fd | tr '\n' ' '), had $(tr '\n' ' ' <"$T/fd.nofd")"

# 8. Pipes and Unix sockets of every kind, with their state, checked from
#    inside the restored process (tests/workloads/skcheck.c).
mkdir "$T/sk"
"$TOOLS/workloads/skcheck" "$T/sk/o" </dev/null >/dev/null 2>&1 &
K=$!
PIDS="$PIDS $K"
wait_for "$T/sk/o.ready" || fail "skcheck did not start"
expect_rc 0 "dump a process with pipes, a FIFO and Unix sockets" "$FERRY" dump -t $K -D "$T/skd"
reap $K
expect_rc 0 "restore it" "$FERRY" restore -D "$T/skd" -d
kill -USR1 $K
wait_for "$T/sk/o.check" || fail "skcheck did not answer"
case "$(cat "$T/sk/o.check" 2>/dev/null)" in
ok*) ok "queued data, pipe size and flags, FIFO, seqpacket boundaries, credentials, half-closed stream, listeners, an accepted connection and its names: all as dumped" ;;
*) fail "skcheck after restore: $(cat "$T/sk/o.check" 2>/dev/null)" ;;
esac

# 9. A socket ferry cannot take (not a Unix socket) is refused, naming it,
#    and the process runs on.
if command -v bash >/dev/null; then
	bash -c 'exec 3<>/dev/udp/127.0.0.1/9; exec sleep 1000' &
	U=$!
	PIDS="$PIDS $U"
	sleep 0.3
	expect_rc 1 "a UDP socket is refused" "$FERRY" dump -t $U -D "$T/udp"
	expect_in "$T/err" "fd 3 (socket:" "the refusal names the fd and its kind"
	kill -0 $U 2>/dev/null && ! gone $U && ok "the process runs on" || fail "the refused process is gone"
else
	skip_case "UDP socket refusal: no bash for /dev/udp"
fi

# 10. File locks: refused without --file-locks (the process runs on), taken
#     with it, and held again by the restored process (seen from another).
mkdir "$T/lk"
"$TOOLS/workloads/lockcheck" "$T/lk/o" </dev/null >/dev/null 2>&1 &
L=$!
PIDS="$PIDS $L"
wait_for "$T/lk/o.ready" || fail "lockcheck did not start"
expect_rc 1 "a process holding locks is refused without --file-locks" "$FERRY" dump -t $L -D "$T/lkd"
expect_in "$T/err" "--file-locks" "the refusal names the option"
kill -0 $L && ok "the process runs on" || fail "the refused process is gone"
expect_rc 0 "dump --file-locks" "$FERRY" dump -t $L -D "$T/lkd" --file-locks
reap $L
"$TOOLS/workloads/lockcheck" --probe "$T/lk/o" >"$T/lk/free"
[ "$(cat "$T/lk/free" | tr '\n' ' ')" = "flock free posix free ofd free " ] && ok "the locks died with the process" ||
	fail "after the dump: $(cat "$T/lk/free" | tr '\n' ' ')"
expect_rc 0 "restore it" "$FERRY" restore -D "$T/lkd" -d
"$TOOLS/workloads/lockcheck" --probe "$T/lk/o" >"$T/lk/held"
[ "$(cat "$T/lk/held" | tr '\n' ' ')" = "flock held posix $L read ofd held " ] &&
	ok "flock, POSIX (owned by process $L) and OFD locks held again" ||
	fail "after the restore: $(cat "$T/lk/held" | tr '\n' ' ')"

# 11. A shell job: a process whose controlling terminal is a pty (script(1)
#     makes one) is refused without --shell-job; with it, dumped, refused at
#     restore without --shell-job, and restored on the restoring terminal, in
#     its session.
if command -v script >/dev/null; then
	# Terminal A holds the job (sleep 4321) and stays open (sleep 4322); the
	# odd durations tell them from the other sleeps of this script.
	setsid script -qfc "sleep 4321 & exec sleep 4322" /dev/null </dev/null >/dev/null 2>&1 &
	PIDS="$PIDS $!"
	J=""
	for _ in $(seq 100); do J=$(pgrep -f -x "sleep 4321" | head -1); [ -n "$J" ] && break; sleep 0.05; done
	PIDS="$PIDS $J $(pgrep -f -x "sleep 4322")"
	ttyA=$(readlink /proc/$J/fd/1)
	expect_rc 1 "a shell job is refused without --shell-job" "$FERRY" dump -t $J -D "$T/job"
	expect_in "$T/err" "controlling terminal" "the refusal says why"
	expect_rc 0 "dump --shell-job" "$FERRY" dump -t $J -D "$T/job" --shell-job
	expect_rc 1 "its restore without --shell-job is refused" "$FERRY" restore -D "$T/job" -d
	expect_in "$T/err" "--shell-job" "the refusal names the option"
	# Terminal B restores it, and stays open a moment for the checks.
	setsid script -qfc "\"$FERRY\" restore -D $T/job -d --shell-job >$T/job.out 2>&1; exec sleep 4323" \
		/dev/null </dev/null >/dev/null 2>&1 &
	for _ in $(seq 100); do [ -s "$T/job.out" ] && break; sleep 0.05; done
	sleep 0.3
	PIDS="$PIDS $(pgrep -f -x "sleep 4323")"
	# Its PID is another: the dumped one is a zombie its parent (now
	# sleep 4322) never reaps.
	J=$(tail -n 1 "$T/job.out")
	PIDS="$PIDS $J"
	ttyB=$(readlink /proc/$J/fd/1 2>/dev/null)
	B=$(pgrep -f -x "sleep 4323" | head -1)
	[ -n "$ttyB" ] && [ "$ttyB" != "$ttyA" ] && [ "$ttyB" = "$(readlink /proc/$B/fd/1)" ] &&
		ok "restored on the restoring terminal ($ttyA then, $ttyB now)" ||
		fail "job fd 1: $ttyB (was $ttyA; restoring terminal $(readlink /proc/$B/fd/1 2>/dev/null)): $(cat $T/job.out)"
	[ "$(ps -o sid= -p $J | tr -d ' ')" = "$(ps -o sid= -p $B | tr -d ' ')" ] &&
		ok "in the restoring terminal's session" || fail "job session $(ps -o sid= -p $J)"
else
	skip_case "shell job: no script(1) to make a terminal"
fi

# 12. A tree that is a PID namespace of its own (its root the namespace's
#     init, as a container's is) comes back as one: a new namespace, the
#     root its init, every process with its PID in there.
if command -v unshare >/dev/null && unshare -p -f true 2>/dev/null; then
	rm -f "$T/ns"*
	unshare -p -f setsid sh -c "\"$TREECHECK\" \"$T/ns\" >/dev/null; exec sleep 4324" \
		</dev/null >/dev/null 2>&1 &
	U=$!
	PIDS="$PIDS $U"
	wait_for "$T/ns.pids" || fail "treecheck did not start in its namespace"
	I=$(ps -o pid= --ppid $U | tr -d ' ')
	PIDS="$PIDS $I"
	NSALL=$(cat "$T/ns.pids")
	sleep 0.5
	expect_rc 1 "a process inside another PID namespace, not its init, is refused" \
		"$FERRY" dump -t "$(ps -o pid= --ppid $I | tr -d ' ')" -D "$T/nsr" -R
	expect_in "$T/err" "not its init" "the refusal says why"
	expect_rc 0 "dump the namespace's init and its tree" "$FERRY" dump -t $I -D "$T/nsd"
	"$FERRY" show "$T/nsd" >"$T/show" 2>&1
	expect_in "$T/show" "PID namespace of its own" "show says the tree was a PID namespace"
	expect_rc 1 "a restore of it that fails" env FERRY_FAULT=restore-fail-after-memory \
		"$FERRY" restore -D "$T/nsd" -d
	left=$(ps -eo args= | grep -c "[t]reecheck $T/ns")
	[ "$left" -eq 0 ] && ok "leaves nothing of the namespace" || fail "$left processes of it left"
	rm -f "$T/pid"
	expect_rc 0 "restore it" "$FERRY" restore -D "$T/nsd" -d --pidfile "$T/pid"
	I2=$(cat "$T/pid" 2>/dev/null)
	PIDS="$PIDS $I2"
	[ "$(awk '/^NSpid:/ {print $3}' /proc/$I2/status 2>/dev/null)" = 1 ] &&
		ok "the root is PID 1 of a new namespace again" || fail "root $I2: $(grep NSpid /proc/$I2/status)"
	inner=""
	for c in $(ps -o pid= --ppid $I2); do
		PIDS="$PIDS $c $(ps -o pid= --ppid $c)"
		for p in $c $(ps -o pid= --ppid $c); do inner="$inner $(awk '/^NSpid:/ {print $3}' /proc/$p/status)"; done
	done
	[ "$(echo $inner | tr ' ' '\n' | sort -n | tr '\n' ' ')" = "$(echo $NSALL | tr ' ' '\n' | sort -n | tr '\n' ' ')" ] &&
		ok "every process has its PID in there ($NSALL)" || fail "PIDs inside: $inner, dumped $NSALL"
	moving "$T/ns" "the tree runs on in its new namespace"
	kill -9 $I2 2>/dev/null
else
	skip_case "PID namespace init: unshare -p cannot create a PID namespace here"
fi

# 13. One open file description, shared by dup (`>log 2>&1`) and by fork
#     (a subshell writing into the same log), stays one: both processes
#     write at one offset, so no line overwrites another.
mkdir "$T/od"
setsid sh -c "exec >\"$T/od/log\" 2>&1 </dev/null; (while :; do echo child; sleep 0.05; done) & while :; do echo parent; sleep 0.05; done" &
O=$!
PIDS="$PIDS $O"
sleep 0.5
# The subshell: the shell's child that is not one of its short sleeps (ps,
# not pgrep: the 6.1 guest has procps' ps but no pgrep).
OC=$(ps -o pid=,args= --ppid $O | awk '$2 != "sleep" {print $1; exit}')
PIDS="$PIDS $OC"
expect_rc 0 "dump a shell and a subshell writing into one log" "$FERRY" dump -t $O -D "$T/od/d"
reap $O
expect_rc 0 "restore them" "$FERRY" restore -D "$T/od/d" -d
sleep 0.5
kill -STOP $O $OC
pos=$(for p in $O $OC; do for fd in 1 2; do awk '/^pos:/ {print $2}' /proc/$p/fdinfo/$fd; done; done | sort -u)
[ "$pos" = "$(stat -c %s "$T/od/log")" ] &&
	ok "fds 1 and 2 of both processes share one offset, at the log's end ($pos)" ||
	fail "offsets $(echo $pos | tr '\n' ' '), log of $(stat -c %s "$T/od/log") bytes"
bad=$(grep -cvx 'parent\|child' "$T/od/log")
[ "$bad" -eq 0 ] && ok "no line of the log overwrote another" || fail "$bad garbled lines in the log"
[ -n "$OC" ] || fail "no subshell of the shell found"
# The whole group (the shell leads it): its sleeps too.
kill -9 -- -$O $O $OC 2>/dev/null

# 14. A pipe whose other end is outside the tree (the process's stdout into
#     a `| cat`): --inherit-fd gives the restored process a new pipe.
pipe_writer "$T/ih"
expect_rc 0 "dump a process writing into a pipe read outside it" "$FERRY" dump -t $H -D "$T/ih/d"
cat "$T/ih/f" >"$T/ih/out2" &
CAT=$!
expect_rc 0 "restore it with --inherit-fd fd[3]:$KEY" "$FERRY" restore -D "$T/ih/d" -d \
	--inherit-fd "fd[3]:$KEY" 3>"$T/ih/f"
sleep 0.5
[ "$(grep -c '^tick$' "$T/ih/out2")" -gt 2 ] && [ -d /proc/$H ] &&
	ok "it writes on into the new pipe" || fail "into the new pipe: $(wc -l <"$T/ih/out2") lines"
expect_rc 2 "--inherit-fd that is not fd[N]:KEY is a usage error" "$FERRY" restore -D "$T/ih/d" \
	--inherit-fd "3:$KEY"
kill -9 $H $CAT 2>/dev/null

[ $fails -eq 0 ]
