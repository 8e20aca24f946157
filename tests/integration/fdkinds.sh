#!/bin/sh
# Fds that are kernel objects of one process (eventfd, timerfd, signalfd,
# epoll, inotify, memfd, deleted files, harmless devices): dumped with their
# state, restored, and checked by the workload from inside (fdcheck). Kinds
# ferry does not rebuild are refused before the freeze, naming the fd, its
# kind and the process; an inotify watch-descriptor gap is refused at
# restore, naming the watch.
. "$(dirname "$0")/lib.sh"
FDCHECK="$TOOLS/workloads/fdcheck"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

# start NAME [--extra X]: an fdcheck in $T/NAME; W gets its PID.
start() {
	n=$1
	shift
	mkdir -p "$T/$n"
	"$FDCHECK" "$T/$n" "$@" </dev/null >/dev/null 2>"$T/$n.err" &
	W=$!
	PIDS="$PIDS $W"
	wait_for "$T/$n/ready" || fail "fdcheck $n did not start: $(cat "$T/$n.err")"
}

# fdlist PID: "N -> link" per fd, a deleted file's name left out (the
# restored one is an O_TMPFILE, named by the kernel).
fdlist() {
	ls -l /proc/$1/fd | awk 'NF > 9 {print $9, $10, $11, $12}' |
		sed -e 's#-> /memfd:#-> memfd:#' -e 's#-> /.* (deleted)$#-> a deleted file#'
}

# verdict NAME PID DESC: ask for the check, expect "ok".
verdict() {
	rm -f "$T/$1/verdict"
	kill -USR1 "$2" 2>/dev/null
	wait_for "$T/$1/verdict"
	case "$(cat "$T/$1/verdict" 2>/dev/null)" in
	ok) ok "$3" ;;
	*) fail "$3: $(cat "$T/$1/verdict" 2>/dev/null || echo "no verdict")" ;;
	esac
}

# 0. The workload's own check passes without ferry.
start ctl
verdict ctl "$W" "fdcheck's own check, not dumped"
kill -9 "$W"

# 1. Dump, restore, check from inside.
start a
fdlist "$W" >"$T/fds.before"
# Before 6.7 fdinfo does not show EFD_SEMAPHORE: no one can dump it, and
# fdcheck then checks only the semaphore eventfd's count.
grep -qs '^eventfd-semaphore:' /proc/$W/fdinfo/* ||
	skip_case "EFD_SEMAPHORE kept: this kernel's fdinfo does not show it (6.7)"
expect_rc 0 "dump a process with one fd of each kind" "$FERRY" dump -t $W -D "$T/d"
kill -9 $W 2>/dev/null
reap $W
[ -s "$T/d/fdata.img" ] && ok "memfd and deleted file contents in fdata.img" || fail "no fdata.img"
"$FERRY" show "$T/d" >"$T/show" 2>&1 || fail "show: $(head -c 300 "$T/show")"
rm -f "$T/pid"
expect_rc 0 "restore it" "$FERRY" restore -D "$T/d" -d --pidfile "$T/pid"
RP=$(cat "$T/pid" 2>/dev/null)
[ -n "$RP" ] && PIDS="$PIDS $RP"
for k in eventfd timerfd signalfd eventpoll inotify memfd:fdcheck; do
	ls -l /proc/$RP/fd 2>/dev/null | grep -q "$k" && ok "the restored process has its $k fd" ||
		fail "no $k fd after restore"
done
fdlist "$RP" >"$T/fds.after"
cmp -s "$T/fds.before" "$T/fds.after" && ok "the same fds, of the same kinds, at the same numbers" ||
	fail "fds differ: $(diff "$T/fds.before" "$T/fds.after" | head -5)"
grep -q 'memfd:fdcheck' /proc/$RP/maps && ok "the memfd is mapped again" || fail "memfd mapping missing"
verdict a "$RP" "every fd's state, checked from inside the restored process"
[ -n "$RP" ] && kill -9 "$RP" 2>/dev/null

# 2. Kinds ferry does not rebuild: refused before the freeze, the process
# left running.
for x in uffd io_uring; do
	case $x in uffd) kind='anon_inode:[userfaultfd]' ;; io_uring) kind='anon_inode:[io_uring]' ;; esac
	start "r$x" --extra $x
	if [ ! -d /proc/$W ] || ! ls -l /proc/$W/fd | grep -qF "$kind"; then
		skip_case "refusal of $x: this kernel does not give the process one ($(cat "$T/r$x.err"))"
		continue
	fi
	fdn=$(ls -l /proc/$W/fd | grep -F "$kind" | awk '{print $9}')
	expect_rc 1 "a process with $x is refused" "$FERRY" dump -t $W -D "$T/r$x.d"
	expect_in "$T/err" "process $W" "the refusal names the process"
	expect_in "$T/err" "fd $fdn ($kind)" "the refusal names fd $fdn and its kind"
	[ -d /proc/$W ] && ! grep -q '^State:.*t' /proc/$W/status && ok "the process runs on" ||
		fail "the refused process is stopped or gone"
	kill -9 $W 2>/dev/null
done

# 3. A watch descriptor the kernel would not hand out again (watch 1
# removed, watch 2 kept): refused at restore, before the process runs.
start gap --extra gap
expect_rc 0 "dump a process whose inotify watches start at 2" "$FERRY" dump -t $W -D "$T/g"
kill -9 $W 2>/dev/null
reap $W
expect_rc 1 "its restore is refused" "$FERRY" restore -D "$T/g" -d
expect_in "$T/err" "came back as descriptor 1, the process knows it as 2" "names the watch descriptors"
finish
