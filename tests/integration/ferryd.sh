#!/bin/sh
# ferryd, the service: `ferry --connect SOCKET COMMAND ...` runs the command
# as a job of ferryd with the caller's credentials, working directory and
# stdio, and exits with its status.
#  1. The same output and exit status as the command run directly: check,
#     show, an unknown command, a failing dump; relative paths are the
#     caller's.
#  2. Three dumps at once through the service, each complete and right.
#  3. A user (nobody) cannot get a root process dumped: the job runs as
#     nobody, is refused by the kernel, writes nothing, the target runs on.
#  4. Hostile clients: bytes that are no request, a packet over 64 KiB, a
#     RUN without its fds, a client that never speaks (dropped), a
#     hundred connections at once; the service answers the next caller.
#     Typed requests from a client that is not libferry (Python): START
#     refused with two commands or PID 0, a typed dump run, STATUS.
#  5. jobs and cancel; a caller's SIGINT cancels its job; follow: another
#     connection gets a job's events and exits with its status.
#  6. ferryd SIGKILLed in the middle of an iterative dump: the target runs
#     on, untraced, every page right; SIGTERM stops ferryd and its jobs.
#  7. libferry as a program gets it: `make install` into a staging root,
#     examples/dump_client.c built with the installed header, library and
#     pkg-config file, run against a ferryd started as systemd starts it
#     (socket activation: the listening socket passed as fd 3); and
#     examples/watch_client.c watching a migration's events (rounds,
#     hand-over, end) through the asynchronous API.
#  8. Trackers kept by ferryd, not keeper processes: taken by the next
#     round (through the service or directly), let go when the target exits
#     or execs, or nobody takes one within --tracker-timeout.
. "$(dirname "$0")/lib.sh"
FERRYD="$(dirname "$FERRY")/ferryd"
DIRTIER="$TOOLS/workloads/dirtier"
[ -x "$FERRYD" ] || skip "no ferryd beside $FERRY"
S="$T/ferryd.sock"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

start_ferryd() {
	"$FERRYD" --socket "$S" --foreground --ferry "$FERRY" --idle-timeout 1 "$@" 2>>"$T/ferryd.log" &
	FD=$!
	PIDS="$PIDS $FD"
	for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.05; done
	[ -S "$S" ] && ok "ferryd listens" || fail "ferryd did not start: $(cat "$T/ferryd.log")"
}
# dirtier NAME [MB] [RATE]: a self-checking workload, its PID in $D.
dirtier() {
	rm -f "$T/$1".*
	"$DIRTIER" "$T/$1" --mb "${2:-16}" --rate "${3:-8}" </dev/null >/dev/null 2>&1 &
	D=$!
	PIDS="$PIDS $D"
	wait_for "$T/$1.ready" || fail "dirtier $1 did not start"
}
untraced() {
	grep -q '^TracerPid:[[:space:]]*0$' /proc/"$1"/status 2>/dev/null &&
		! grep -q '^State:.*[Tt]' /proc/"$1"/status && ok "$2" ||
		fail "$2: $(grep -E '^(State|TracerPid)' /proc/"$1"/status 2>&1 | tr '\n' ' ')"
}
start_ferryd

# 1. The same as direct.
"$FERRY" check >"$T/c1" 2>&1; r1=$?
"$FERRY" --connect "$S" check >"$T/c2" 2>&1; r2=$?
[ $r1 = $r2 ] && diff "$T/c1" "$T/c2" >/dev/null && ok "check: the same output and status ($r1)" ||
	fail "check: direct $r1, service $r2: $(diff "$T/c1" "$T/c2" | head -5)"
expect_rc 2 "an unknown command: the command's usage status" "$FERRY" --connect "$S" bogus
expect_in "$T/err" "unknown command \`bogus\`" "and its message on the caller's stderr"
dirtier one
mkdir -p "$T/wd"
(cd "$T/wd" && "$FERRY" --connect "$S" dump -t $D -D rel -R >"$T/out" 2>&1) &&
	ok "dump -R through the service" || fail "dump: $(cat "$T/out")"
[ -s "$T/wd/rel/inventory.img" ] && ok "a relative -D is the caller's working directory" ||
	fail "no $T/wd/rel/inventory.img: $(ls "$T/wd" "$T" 2>&1 | tr '\n' ' ')"
"$FERRY" show "$T/wd/rel" >"$T/s1" 2>&1
FERRY_SOCKET="$S" "$FERRY" show "$T/wd/rel" >"$T/s2" 2>&1
diff "$T/s1" "$T/s2" >/dev/null && ok "show through FERRY_SOCKET prints what show prints" ||
	fail "show differs: $(diff "$T/s1" "$T/s2" | head -5)"
expect_rc 1 "a dump of no process fails with the command's status" "$FERRY" --connect "$S" \
	dump -t 999999 -D "$T/none"
expect_in "$T/err" "ferry dump:" "with the command's message"

# 2. Three dumps at once.
P3=""
for k in a b c; do dirtier "$k" 32 8; P3="$P3 $D"; done
k=0
for p in $P3; do
	k=$((k + 1))
	"$FERRY" --connect "$S" dump -t $p -D "$T/cc$k" -R >"$T/cc$k.out" 2>&1 &
	eval "J$k=\$!"
done
all=0
for k in 1 2 3; do eval "wait \$J$k" || all=1; done
[ $all = 0 ] && ok "three dumps at once, each exit 0" || fail "concurrent: $(cat "$T"/cc?.out)"
bad=""
for k in 1 2 3; do "$FERRY" show --verify "$T/cc$k" >/dev/null 2>&1 || bad="$bad $k"; done
[ -z "$bad" ] && ok "each of the three verifies" || fail "dumps that do not verify:$bad"
for k in a b c; do check_mem "$T/$k" "$(cut -d' ' -f1 "$T/$k.ready")" "dirtier $k intact after its dump"; done

# 3. nobody and a root process.
if command -v setpriv >/dev/null 2>&1; then
	chmod 755 "$T"
	expect_rc 1 "nobody's dump of a root process is refused" setpriv --reuid=65534 --regid=65534 \
		--clear-groups "$FERRY" --connect "$S" dump -t $D -D "$T/nobody"
	[ -e "$T/nobody" ] && fail "something was written for nobody" || ok "nothing was written"
	grep -q "uid 65534" "$T/ferryd.log" && ok "the job ran as nobody (ferryd's log)" ||
		fail "ferryd log: $(tail -3 "$T/ferryd.log")"
	untraced $D "the target runs on, untraced"
else
	skip_case "a user's request: no setpriv here"
fi

# 4. Hostile clients.
python3 - "$S" >"$T/hostile" 2>&1 <<'PY'
import socket, sys, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.settimeout(5)
    return s
s = conn(); s.send(b"\xff\xfe garbage"); print("garbage", len(s.recv(65536)) > 0)
s = conn(); s.send(b"x" * 100000); print("oversized", len(s.recv(65536)) > 0)
s = conn(); s.send(bytes([8, 1, 18, 5]) + b"check"); print("nofds", len(s.recv(65536)) > 0)
idle = conn(); time.sleep(1.6)
try:
    print("idle dropped", idle.recv(10) == b"")
except Exception as e:
    print("idle dropped", False, e)
many = [conn() for _ in range(100)]
print("many", len(many))
PY
expect_in "$T/hostile" "garbage True" "bytes that are no request are answered with an error"
expect_in "$T/hostile" "oversized True" "a packet over 64 KiB is answered with an error"
expect_in "$T/hostile" "nofds True" "a RUN without its fds is answered with an error"
expect_in "$T/hostile" "idle dropped True" "a client that never speaks is dropped"
expect_in "$T/ferryd.log" "a bad request: not a ferry request" "ferryd logs the bad request"
expect_rc 0 "the service still answers" "$FERRY" --connect "$S" check

# 4b. Typed requests (START, STATUS), spoken from Python with the message
# encoded by hand: a client that is not libferry, as an orchestrator's.
dirtier ty 16 8
python3 - "$S" "$D" "$T/typed" >"$T/typed.out" 2>&1 <<'PY'
import os, socket, sys
path, pid, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def varint(n):
    b = b""
    while True:
        x, n = n & 0x7f, n >> 7
        b += bytes([x | (0x80 if n else 0)])
        if not n:
            return b
def fld(num, v):
    if isinstance(v, int):
        return varint(num << 3) + varint(v)
    return varint(num << 3 | 2) + varint(len(v)) + v
def parse(b):
    f, i = {}, 0
    while i < len(b):
        key, i = b[i], i + 1
        shift, k = 7, key & 0x7f
        while key & 0x80:
            key, i = b[i], i + 1
            k |= (key & 0x7f) << shift
            shift += 7
        num, wt = k >> 3, k & 7
        n, shift = 0, 0
        while True:
            c, i = b[i], i + 1
            n |= (c & 0x7f) << shift
            shift += 7
            if not c & 0x80:
                break
        if wt == 2:
            f.setdefault(num, []).append(b[i:i + n])
            i += n
        else:
            f.setdefault(num, []).append(n)
    return f
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.settimeout(60)
    return s
fds = [os.open(".", os.O_PATH | os.O_DIRECTORY), os.open("/dev/null", os.O_RDWR),
       os.open("/dev/null", os.O_RDWR), os.open("/dev/null", os.O_RDWR)]
dump = fld(1, pid) + fld(2, out.encode()) + fld(4, 1)
# Two commands in one START.
s = conn()
socket.send_fds(s, [fld(1, 5) + fld(5, fld(1, b"") + fld(2, dump))], fds)
r = parse(s.recv(65536))
print("two", r[1][0], r[2][0], r[3][0].decode())
# A PID that is none.
s = conn()
socket.send_fds(s, [fld(1, 5) + fld(5, fld(2, fld(1, 0) + fld(2, b"x")))], fds)
r = parse(s.recv(65536))
print("pid0", r[1][0], r[2][0], r[3][0].decode())
# The dump itself.
s = conn()
socket.send_fds(s, [fld(1, 5) + fld(5, fld(2, dump))], fds)
r = parse(s.recv(65536))
job = r[4][0]
print("started", r[1][0], job)
r = parse(s.recv(65536))
print("done", r[1][0], r.get(6, [-1])[0])
s = conn()
s.send(fld(1, 6) + fld(3, job))
r = parse(s.recv(65536))
j = parse(r[8][0])
print("status", r[1][0], len(r[8]), j[4][0].decode())
s = conn()
s.send(fld(1, 6) + fld(3, 999999))
r = parse(s.recv(65536))
print("nostatus", r[1][0], r[2][0])
PY
expect_in "$T/typed.out" "two 1 22 START takes exactly one command, not 2" \
	"START with two commands is refused (EINVAL), saying why"
expect_in "$T/typed.out" "pid0 1 22 pid 0 is no process ID" "START with PID 0 is refused"
expect_in "$T/typed.out" "done 3 0" "a typed dump runs as a job and ends with exit 0"
[ -s "$T/typed/inventory.img" ] && ok "its images are written" || fail "no $T/typed/inventory.img"
expect_in "$T/typed.out" "status 4 1 dump -t $D -D $T/typed -R" \
	"STATUS gives that job alone, run as the words its fields stand for"
expect_in "$T/typed.out" "nostatus 1 3" "STATUS of a job that does not exist is ESRCH"
TID=$(sed -n 's/^started 2 //p' "$T/typed.out")
"$FERRY" --connect "$S" status "$TID" >"$T/st.out" 2>&1
expect_in "$T/st.out" "exit 0       dump -t $D" "ferry --connect ... status ID prints that job"
check_mem "$T/ty" $D "the typed dump's target is intact (-R)"
kill -9 $D 2>/dev/null

# 5. jobs, cancel, a caller's SIGINT.
"$FERRY" --connect "$S" page-server -D "$T/ps" --address "unix:$T/ps.sock" >/dev/null 2>"$T/ps.err" &
C=$!
sleep 0.5
"$FERRY" --connect "$S" jobs >"$T/jobs" 2>&1
expect_in "$T/jobs" "running      page-server" "jobs lists the running page server"
ID=$(awk '/running +page-server/ {print $1}' "$T/jobs")
expect_rc 0 "cancel it" "$FERRY" --connect "$S" cancel "$ID"
wait $C
rc=$?
[ $rc = 143 ] && ok "its caller exits as the job did (SIGTERM: 143)" || fail "caller: exit $rc"
expect_rc 1 "cancel of a job that has ended is refused" "$FERRY" --connect "$S" cancel "$ID"
"$FERRY" --connect "$S" page-server -D "$T/ps2" --address "unix:$T/ps2.sock" >/dev/null 2>&1 &
C=$!
sleep 0.5
kill -INT $C
wait $C
rc=$?
[ $rc = 143 ] && ok "a caller's SIGINT cancels its job" || fail "after SIGINT: exit $rc"
"$FERRY" --connect "$S" jobs >"$T/jobs" 2>&1
grep -q "running" "$T/jobs" && fail "a job runs on: $(cat "$T/jobs")" || ok "no job runs on"

# 5a. follow: another connection follows a job, its events and its end.
dirtier fl 64 64
"$FERRY" --connect "$S" dump --iterative -R -t $D -D "$T/fl" --max-rounds 30 \
	--downtime-limit 1 >"$T/fl.out" 2>&1 &
C=$!
for _ in $(seq 100); do
	FID=$("$FERRY" --connect "$S" jobs 2>/dev/null | awk '/running +dump --iterative/ {print $1}')
	[ -n "$FID" ] && break
	sleep 0.02
done
if [ -n "$FID" ]; then
	"$FERRY" --connect "$S" follow "$FID" >"$T/follow.out" 2>"$T/follow.err"
	rc=$?
	wait $C
	crc=$?
	[ $rc = 0 ] && [ $crc = 0 ] && ok "follow exits with the job's status (0), as its caller does" ||
		fail "follow: exit $rc, the caller $crc: $(cat "$T/follow.err" "$T/fl.out")"
	grep -q '"event":"round"' "$T/follow.out" && ok "follow prints the job's rounds as they come" ||
		fail "no round in follow's output: $(head -c 300 "$T/follow.out")"
	expect_rc 143 "follow of a job that has ended exits with its status at once (SIGTERM: 143)" \
		"$FERRY" --connect "$S" follow "$ID"
	if command -v setpriv >/dev/null 2>&1; then
		expect_rc 1 "nobody cannot follow root's job" setpriv --reuid=65534 --regid=65534 \
			--clear-groups "$FERRY" --connect "$S" follow "$FID"
		expect_in "$T/err" "no job $FID of yours" "and is told there is none of theirs"
	else
		skip_case "follow refused to another user: no setpriv here"
	fi
else
	fail "the iterative dump's job never showed in jobs: $(cat "$T/fl.out")"
	wait $C
fi
kill -9 $D 2>/dev/null

# 5b. A target that exits while its pre-dump waits on a page server that
#     never answers: the kernel tells ferryd (the proc connector), which
#     ends the job at once and tells its caller why.
python3 - "$T/mute.sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(4)
c, _ = s.accept()
time.sleep(60)
PY
M=$!
PIDS="$PIDS $M"
for _ in $(seq 100); do [ -S "$T/mute.sock" ] && break; sleep 0.05; done
dirtier gone 16 0
"$FERRY" --connect "$S" pre-dump -t $D -D "$T/gone" --page-server --address "unix:$T/mute.sock" \
	>"$T/gone.out" 2>&1 &
C=$!
for _ in $(seq 100); do grep -q "pre-dump -t $D .*started" "$T/ferryd.log" && break; sleep 0.02; done
sleep 0.5
t0=$(date +%s%N)
kill -9 $D
wait $C
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -9 $M 2>/dev/null
if grep -q "no proc connector" "$T/ferryd.log"; then
	skip_case "a target's exit told by the kernel: $(grep "no proc connector" "$T/ferryd.log")"
else
	[ $rc != 0 ] && grep -q "process $D exited; the job is ended" "$T/gone.out" &&
		ok "the job ended at once ($ms ms), its caller told the target exited" ||
		fail "pre-dump of an exiting target: exit $rc after $ms ms: $(cat "$T/gone.out")"
	expect_in "$T/ferryd.log" "its target $D exited" "ferryd heard it from the kernel"
fi

# 6. ferryd killed mid-way through an iterative dump.
# 512 MiB: its first round alone takes longer than the wait below.
dirtier it 512 64
"$FERRY" --connect "$S" dump -t $D -D "$T/it" --iterative --max-rounds 63 --downtime-limit 1 \
	>"$T/it.out" 2>&1 &
C=$!
for _ in $(seq 100); do grep -q "dump -t $D .*started" "$T/ferryd.log" && break; sleep 0.02; done
sleep 0.3
kill -9 $FD
wait $C
rc=$?
[ $rc = 1 ] && grep -q "ferryd went away" "$T/it.out" && ok "the caller hears ferryd went away" ||
	fail "the caller: exit $rc: $(cat "$T/it.out")"
grep -q "dumped process" "$T/it.out" && fail "the dump ended before ferryd was killed" ||
	ok "ferryd died in the middle of the job"
for _ in $(seq 100); do
	grep -q '^TracerPid:[[:space:]]*0$' /proc/$D/status && ! grep -q '^State:.*[Tt]' /proc/$D/status &&
		break
	sleep 0.1
done
untraced $D "the target runs on, untraced, after ferryd's death"
[ -e "$T/it/inventory.img" ] && fail "a final dump was written" || ok "no final dump was written"
check_mem "$T/it" $D "every page of the target is right"
rm -f "$S"
start_ferryd
"$FERRY" --connect "$S" jobs >"$T/jobs" 2>&1
grep -q "cut off .*dump -t $D -D $T/it --iterative" "$T/jobs" &&
	ok "the restarted ferryd reports the iterative dump as cut off" || fail "jobs: $(cat "$T/jobs")"
grep -q "exit 0 .*page-server" "$T/jobs" || grep -q "signal 15 .*page-server" "$T/jobs" &&
	ok "and the jobs that ended before as they ended" || fail "jobs: $(cat "$T/jobs")"
"$FERRY" --connect "$S" page-server -D "$T/ps3" --address "unix:$T/ps3.sock" >/dev/null 2>&1 &
C=$!
sleep 0.5
kill -TERM $FD
wait $FD
[ $? = 0 ] && ok "SIGTERM: ferryd stops its jobs and exits 0" || fail "ferryd after SIGTERM"
wait $C
[ ! -e "$S" ] && ok "and removes its socket" || fail "the socket is left"

# 7. libferry, installed, and socket activation.
BUILD=$(dirname "$FERRY")
SAN=0
case "$BUILD" in *asan*) SAN=1 ;; esac
if make -s install DESTDIR="$T/inst" PREFIX=/usr BUILD="$BUILD" SAN=$SAN >"$T/inst.out" 2>&1; then
	ok "make install into a staging root"
	[ -L "$T/inst/usr/lib/libferry.so.0" ] && [ -s "$T/inst/usr/lib/pkgconfig/ferry.pc" ] &&
		[ -s "$T/inst/usr/lib/systemd/system/ferryd.socket" ] &&
		objdump -p "$T/inst/usr/lib/libferry.so" | grep -q "SONAME.*libferry\.so\.0$" &&
		ok "library (soname libferry.so.0), ferry.pc and systemd units installed" ||
		fail "installed: $(cd "$T/inst" && find . | head -20 | tr '\n' ' ')"
	exported=$(nm -D --defined-only "$T/inst/usr/lib/libferry.so.0" | awk '$2 == "T" {print $3}' |
		grep -v '^ferry_' | tr '\n' ' ')
	[ -z "$exported" ] && ok "libferry exports only ferry_* functions" ||
		fail "libferry exports more: $exported"
	SANFL=""
	[ $SAN = 1 ] && SANFL="-fsanitize=address,undefined"
	# shellcheck disable=SC2046
	if cc $SANFL examples/dump_client.c $(PKG_CONFIG_PATH="$T/inst/usr/lib/pkgconfig" \
		PKG_CONFIG_SYSROOT_DIR="$T/inst" pkg-config --cflags --libs ferry) -o "$T/dump_client" \
		2>"$T/cc.err"; then
		ok "examples/dump_client.c builds against the installed library with pkg-config"
		python3 - "$S" "$FERRYD" "$FERRY" "$T/act.log" <<'PY' &
import os, socket, sys
path, ferryd, ferry, log = sys.argv[1:5]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(path); s.listen(16)
fd = s.fileno()
if fd != 3:
    os.dup2(fd, 3)
os.set_inheritable(3, True)
out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
os.dup2(out, 2)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(ferryd, [ferryd, "--foreground", "--ferry", ferry, "--socket", path + ".unused"])
PY
		FD=$!
		PIDS="$PIDS $FD"
		for _ in $(seq 100); do grep -q listening "$T/act.log" 2>/dev/null && break; sleep 0.05; done
		dirtier lib
		LD_LIBRARY_PATH="$T/inst/usr/lib" "$T/dump_client" "$S" $D "$T/libdump" >"$T/dc.out" 2>&1
		rc=$?
		[ $rc = 0 ] && grep -q "ferry exited 0" "$T/dc.out" &&
			ok "dump_client dumps a process through the socket-activated ferryd" ||
			fail "dump_client: exit $rc: $(cat "$T/dc.out"; tail -3 "$T/act.log")"
		[ ! -e "$S.unused" ] && ok "ferryd used the socket it was given, made none" ||
			fail "ferryd made its own socket"
		"$FERRY" show --verify "$T/libdump" >/dev/null 2>&1 && ok "the dump verifies" ||
			fail "the dump does not verify"
		check_mem "$T/lib" $D "the process runs on intact"
		# The asynchronous API with events: a migration watched.
		# shellcheck disable=SC2046
		cc $SANFL examples/watch_client.c $(PKG_CONFIG_PATH="$T/inst/usr/lib/pkgconfig" \
			PKG_CONFIG_SYSROOT_DIR="$T/inst" pkg-config --cflags --libs ferry) \
			-o "$T/watch_client" 2>"$T/cc.err" ||
			fail "watch_client does not build: $(cat "$T/cc.err")"
		dirtier mv 32 8
		"$FERRY" page-server -D "$T/mv" --address "unix:$T/mv.sock" --restore \
			--pidfile "$T/mv.pid" >"$T/mv.out" 2>"$T/mv.err" &
		PS=$!
		PIDS="$PIDS $PS"
		for _ in $(seq 100); do grep -q listening "$T/mv.out" 2>/dev/null && break; sleep 0.05; done
		LD_LIBRARY_PATH="$T/inst/usr/lib" "$T/watch_client" "$S" migrate -t $D \
			--to "unix:$T/mv.sock" >"$T/wc.out" 2>&1
		rc=$?
		[ $rc = 0 ] && ok "a migration through the service, watched with libferry" ||
			fail "watch_client migrate: exit $rc: $(cat "$T/wc.out")"
		expect_in "$T/wc.out" '"event":"round","round":1,' "its rounds come as events"
		expect_in "$T/wc.out" '"event":"handover","remote_pid":' "and its hand-over"
		expect_in "$T/wc.out" "round 1: " "each round typed too (libferry's fields)"
		grep -q "^handover: now process [1-9][0-9]*, downtime [0-9.]* ms" "$T/wc.out" &&
			ok "and the hand-over typed, its remote PID and downtime" ||
			fail "no typed hand-over in: $(head -c 600 "$T/wc.out")"
		expect_in "$T/wc.out" "done 0" "and its end, with the exit status"
		wait $PS
		RP=$(cat "$T/mv.pid" 2>/dev/null)
		[ -n "$RP" ] && PIDS="$PIDS $RP" && check_mem "$T/mv" $RP "the migrated process is intact"
		kill -TERM $FD
		wait $FD
	else
		fail "dump_client does not build: $(cat "$T/cc.err")"
	fi
else
	fail "make install: $(tail -5 "$T/inst.out")"
fi
# 8. Trackers kept by the service. A pre-dump through ferryd gives its
# uffd-wp tracker to ferryd (no keeper process); the next round takes it
# from there, through the service or from the command line; ferryd
# releases one when its target exits or execs, or nobody takes it in time.
uffds() { ls -l /proc/"$FD"/fd 2>/dev/null | grep -c userfaultfd; }
start_ferryd
dirtier tk 32 8
"$FERRY" --connect "$S" pre-dump -t $D -D "$T/tk1" >"$T/tk1.out" 2>&1 &&
	ok "pre-dump through the service" || fail "pre-dump: $(cat "$T/tk1.out")"
if grep -q "tracker uffd-wp" "$T/tk1.out"; then
	[ "$(uffds)" = 1 ] && ok "ferryd holds its tracker (a userfaultfd among its fds)" ||
		fail "ferryd holds $(uffds) userfaultfds"
	expect_in "$T/ferryd.log" "keeping the tracker of process $D" "ferryd says it keeps it"
	"$FERRY" --connect "$S" jobs >"$T/tkjobs" 2>&1
	grep -q "^$D  *0  *[0-9.]* s$" "$T/tkjobs" && ok "jobs lists it under TRACKER" ||
		fail "jobs does not list the tracker: $(cat "$T/tkjobs")"
	pgrep -f "pre-dump -t $D" >/dev/null && fail "a keeper process is left: $(pgrep -af "pre-dump -t $D")" ||
		ok "no keeper process is left"
	"$FERRY" --connect "$S" dump -R -t $D -D "$T/tk2" --prev-images-dir ../tk1 >"$T/tk2.out" 2>&1 ||
		fail "dump on top: $(cat "$T/tk2.out")"
	grep -q " in parent" "$T/tk2.out" && ok "the next round, through the service, took it: $(cat "$T/tk2.out")" ||
		fail "the next round copied everything: $(cat "$T/tk2.out")"
	expect_in "$T/ferryd.log" "tracker of process $D handed to its next round" "ferryd says it handed it over"
	[ "$(uffds)" = 0 ] && ok "and holds none after" || fail "ferryd still holds $(uffds)"
	check_mem "$T/tk" $D "the target is intact after both rounds"
	# From the command line: the same abstract socket a keeper answers on.
	"$FERRY" --connect "$S" pre-dump -t $D -D "$T/tk3" >/dev/null 2>&1
	"$FERRY" dump -R -t $D -D "$T/tk4" --prev-images-dir ../tk3 >"$T/tk4.out" 2>&1
	grep -q " in parent" "$T/tk4.out" && ok "a dump run directly takes the service's tracker" ||
		fail "a direct dump copied everything: $(cat "$T/tk4.out")"
	# Its target's exit.
	"$FERRY" --connect "$S" pre-dump -t $D -D "$T/tk5" >/dev/null 2>&1
	[ "$(uffds)" = 1 ] || fail "no tracker kept for the exit case"
	kill -9 $D
	for _ in $(seq 100); do [ "$(uffds)" = 0 ] && break; sleep 0.05; done
	[ "$(uffds)" = 0 ] && ok "its target killed, ferryd lets the tracker go" ||
		fail "ferryd still holds $(uffds) after the target's death"
	expect_in "$T/ferryd.log" "tracker of process $D (uid 0) released: its target exited" \
		"and says why"
	# Its target's exec (a shell that execs once told to).
	sh -c "while [ ! -e '$T/go' ]; do sleep 0.05; done; exec sleep 1000" </dev/null >/dev/null 2>&1 &
	X=$!
	PIDS="$PIDS $X"
	"$FERRY" --connect "$S" pre-dump --tree=no -t $X -D "$T/tk6" >"$T/tk6.out" 2>&1 ||
		fail "pre-dump of the shell: $(cat "$T/tk6.out")"
	if grep -q "tracker uffd-wp" "$T/tk6.out"; then
		touch "$T/go"
		for _ in $(seq 100); do [ "$(uffds)" = 0 ] && break; sleep 0.05; done
		[ "$(uffds)" = 0 ] && ok "its target's exec: ferryd lets the tracker go" ||
			fail "ferryd still holds $(uffds) after the exec"
		expect_in "$T/ferryd.log" "process $X (uid 0) released: its target ran a new program" \
			"and says why"
	else
		skip_case "a tracker released on exec: the shell's pre-dump left no uffd-wp tracker"
	fi
	kill -TERM $FD
	wait $FD
	# Nobody takes it in time.
	start_ferryd --tracker-timeout 1
	dirtier tk7 16 8
	"$FERRY" --connect "$S" pre-dump -t $D -D "$T/tk7" >/dev/null 2>&1
	[ "$(uffds)" = 1 ] || fail "no tracker kept for the timeout case"
	for _ in $(seq 100); do [ "$(uffds)" = 0 ] && break; sleep 0.05; done
	[ "$(uffds)" = 0 ] && ok "a tracker nobody took for --tracker-timeout is let go" ||
		fail "ferryd still holds $(uffds) after its timeout"
	expect_in "$T/ferryd.log" "released: nobody took it within the tracker timeout" "and says why"
	check_mem "$T/tk7" $D "its target is intact"
	kill -TERM $FD
	wait $FD
else
	skip_case "trackers kept by the service: the pre-dump armed no uffd-wp tracker here ($(cat "$T/tk1.out"))"
	kill -TERM $FD
	wait $FD
fi
finish
