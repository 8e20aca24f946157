#!/bin/sh
# ferry restore on real processes: dump (ending the original), restore,
# and let the workloads check themselves: every page, a counter written to a
# file at the right offset, threads taking turns under a mutex and condition
# variable, live AVX registers, a signal handler, a pending signal, a fork.
# Bad images and changed files are refused without creating a process, and
# a failure half-way kills the half-built one. Runs under tests/run.sh's
# subreaper, so restored processes are reaped and free their PIDs.
. "$(dirname "$0")/lib.sh"
MEMTEST="$TOOLS/workloads/memtest"
RSTTEST="$TOOLS/workloads/rsttest"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

wait_for() { for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done; return 1; }
# gone PID: no such process, or a zombie. One read of its status: a process
# reaped between two reads must not look alive.
# memtest_check DESC PID WHAT: ask a memtest to check all of its memory.
memtest_check() {
	rm -f "$1.check"
	kill -USR1 "$2"
	for _ in $(seq 100); do [ -s "$1.check" ] && break; sleep 0.05; done
	if [ "$(cat "$1.check" 2>/dev/null)" = ok ]; then ok "$3"; else fail "$3: $(cat "$1.check" 2>/dev/null)"; fi
}

# restore_d DIR: restore detached; RP gets the PID.
restore_d() {
	rm -f "$T/pid"
	expect_rc 0 "restore -d $(basename "$1")" "$FERRY" restore -D "$1" -d --pidfile "$T/pid"
	RP=$(cat "$T/pid" 2>/dev/null)
	[ -n "$RP" ] && PIDS="$PIDS $RP"
	[ -n "$RP" ] && [ "$(cat "$T/out")" = "$RP" ] && ok "prints the PID it wrote to --pidfile" || fail "stdout $(cat "$T/out"), pidfile $RP"
}

# 1. Every kind of memory, three threads; same PID, same maps, same fds.
"$MEMTEST" "$T/m.desc" --mb 16 --threads 3 </dev/null >/dev/null 2>&1 &
W=$!
PIDS="$PIDS $W"
wait_for "$T/m.desc" || fail "memtest did not start"
grep -v vsyscall /proc/$W/maps >"$T/maps.before"
ls /proc/$W/task | wc -l >"$T/threads.before"
ls -l /proc/$W/fd | awk '{print $9, $10, $11}' >"$T/fds.before"
expect_rc 0 "dump memtest" "$FERRY" dump -t $W -D "$T/m"
reap $W
restore_d "$T/m"
[ "$RP" = "$W" ] && ok "same PID as dumped ($W)" || fail "restored as $RP, dumped as $W"
[ "$(grep -c userfaultfd /proc/$RP/maps)" = 0 ] && ! ls -l /proc/$RP/fd | grep -q userfaultfd &&
	ok "no userfaultfd left in the process" || fail "a userfaultfd is left behind"
memtest_check "$T/m.desc" "$RP" "every page of every region after restore"
[ "$(ls /proc/$RP/task | wc -l)" = "$(cat "$T/threads.before")" ] && ok "all threads back" || fail "threads: $(ls /proc/$RP/task | wc -l)"
ls -l /proc/$RP/fd | awk '{print $9, $10, $11}' >"$T/fds.after"
cmp -s "$T/fds.before" "$T/fds.after" && ok "the same fds" || fail "fds differ: $(diff "$T/fds.before" "$T/fds.after" | head -5)"
grep -v vsyscall /proc/$RP/maps >"$T/maps.after"
# The kernel may merge neighbours the original kept apart (different anon
# histories): compare the address ranges covered, per protection and name.
cover() { awk '{split($1,a,"-"); print a[1], a[2], $2, $6}' "$1" | python3 -c '
import sys
rows = [l.split(None, 3) for l in sys.stdin]
out = []
for s, e, p, n in ((int(r[0], 16), int(r[1], 16), r[2], (r[3] if len(r) > 3 else "").strip()) for r in rows):
    if out and out[-1][1] == s and out[-1][2:] == [p, n]:
        out[-1][1] = e
    else:
        out.append([s, e, p, n])
for r in out: print("%x-%x %s %s" % tuple(r))'; }
cover "$T/maps.before" >"$T/cover.before"
cover "$T/maps.after" >"$T/cover.after"
cmp -s "$T/cover.before" "$T/cover.after" && ok "the same mappings, protections and files" || fail "maps differ: $(diff "$T/cover.before" "$T/cover.after" | head -8)"
if grep -q '\[heap\]' "$T/maps.before"; then # not under ASan: its allocator uses no brk
	grep -q '\[heap\]' "$T/maps.after" && ok "[heap] where brk says" || fail "no [heap] after restore"
else
	skip_case "[heap] where brk says: the workload has no [heap] (ASan's allocator uses no brk)"
fi

# 2. Restoring twice from the same images; --require-same-pid while taken.
expect_rc 1 "--require-same-pid refuses while the PID is taken" "$FERRY" restore -D "$T/m" -d --require-same-pid
expect_in "$T/err" "PID $W is in use" "says the PID is in use"
expect_rc 0 "without it, a second copy under another PID" "$FERRY" restore -D "$T/m" -d
R2=$(cat "$T/out"); PIDS="$PIDS $R2"
expect_in "$T/err" "is in use" "warns about the new PID"
[ -n "$R2" ] && [ "$R2" != "$W" ] && memtest_check "$T/m.desc" "$R2" "the copy under PID $R2 checks out"
kill -9 "$R2" "$RP"
all_gone "$RP"
# This time with the fallback page path forced: process_vm_writev only.
FERRY_HIDE_FEATURES=userfaultfd "$FERRY" -vv restore -D "$T/m" -d >"$T/out" 2>"$T/err"
RP=$(cat "$T/out"); PIDS="$PIDS $RP"
[ "$RP" = "$W" ] && ok "the same images restore again under the same PID" || fail "second restore got $RP: $(tail -2 "$T/err")"
expect_in "$T/err" "pages by process_vm_writev" "without userfaultfd, pages go by process_vm_writev"
memtest_check "$T/m.desc" "$RP" "second restore (process_vm_writev) checks out"
kill -9 "$RP"

# 3. The process itself: counter and file offset, mutex/condvar threads,
# AVX registers, handler, pending signal, fork.
mkdir "$T/r"
"$RSTTEST" "$T/r" </dev/null >/dev/null 2>&1 &
W=$!
PIDS="$PIDS $W"
wait_for "$T/r/ready" || fail "rsttest did not start"
sleep 0.3
kill -s RTMIN+1 $W     # blocked: stays pending through the dump
expect_rc 0 "dump rsttest" "$FERRY" dump -t $W -D "$T/ri"
reap $W
at_dump=$(wc -l <"$T/r/log")
restore_d "$T/ri"
# What the kernel keeps for the process and each thread, as a dump of the
# restored process records it, must be what the first dump recorded.
expect_rc 0 "dump the restored process again (-R)" "$FERRY" dump -t "$RP" -D "$T/ri2" -R
"$FERRY" show --json "$T/ri" >"$T/a.json" && "$FERRY" show --json "$T/ri2" >"$T/b.json"
python3 - "$T/a.json" "$T/b.json" >"$T/state.diff" <<'PY'
import json, sys
a, b = (json.load(open(f))["process"] for f in sys.argv[1:3])
bad = []
for k in ("pid", "cwd", "exe", "umask", "personality", "mm", "creds", "rlimits", "sigactions",
          "shared_pending", "threads"):
    if a.get(k) != b.get(k):
        bad.append("%s: %s -> %s" % (k, a.get(k), b.get(k)))
tb = {t["tid"]: t for t in b["thread_state"]}
for t in a["thread_state"]:
    u = tb.get(t["tid"], {})
    for k in t:
        if t[k] != u.get(k):
            bad.append("thread %d %s: %s -> %s" % (t["tid"], k, t[k], u.get(k)))
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
[ $? -eq 0 ] && ok "handlers, masks, pending, rseq, robust lists, clear_child_tid, altstacks, mm fields, creds, rlimits as dumped" \
	|| fail "kernel state differs after restore: $(head -5 "$T/state.diff")"
rsttest_check "$T/r" "$RP"
c=$RST
case "$c" in ok*) ok "rsttest checks itself after restore: $c" ;; *) fail "rsttest: $c" ;; esac
case "$c" in *" fork=ok"*) ok "fork after restore" ;; *) fail "fork: $c" ;; esac
case "$c" in *" usr2=1 "*) ok "the SIGUSR2 handler fired once" ;; *) fail "handler: $c" ;; esac
case "$c" in *" pending=1"*) ok "the pending real-time signal survived" ;; *) fail "pending: $c" ;; esac
n=$(echo "$c" | sed -n 's/.*counter=\([0-9]*\).*/\1/p')
[ "${n:-0}" -gt "$at_dump" ] && ok "the counter went on from $at_dump to $n" || fail "counter ${n:-?} after $at_dump at dump"
log_goes_on "$T/r/log" "the log continues at the dumped offset, no gap or overwrite"
kill -9 "$RP"

# 4. Without -d ferry waits and passes on how the process ended.
"$FERRY" restore -D "$T/m" --pidfile "$T/pid2" >/dev/null 2>&1 &
F=$!
wait_for "$T/pid2" || fail "no pidfile without -d"
RP=$(cat "$T/pid2"); PIDS="$PIDS $RP"
memtest_check "$T/m.desc" "$RP" "restored in the foreground"
kill -TERM "$RP"
wait $F; rc=$?
[ $rc -eq 143 ] && ok "ferry restore exits 128+SIGTERM when the process is killed" || fail "exit $rc, want 143"

# 5. Another user's process, with its own limits: credentials, groups,
# capabilities and rlimits as they were (dumped through /proc/PID/limits:
# prlimit on another user's process needs CAP_SYS_RESOURCE).
chmod 711 "$T"
mkdir -m 777 "$T/u"
prlimit --nofile=1000:2000 --core=12345:54321 setpriv --reuid=65534 --regid=65534 \
	--groups=100,200 --inh-caps=-all "$MEMTEST" "$T/u/w.desc" --mb 2 </dev/null >/dev/null 2>&1 &
W=$!
PIDS="$PIDS $W"
wait_for "$T/u/w.desc" || fail "memtest as nobody did not start"
grep -E '^(Uid|Gid|Groups|Cap)' /proc/$W/status >"$T/creds.before"
cat /proc/$W/limits >"$T/limits.before"
expect_rc 0 "dump a process of another user" "$FERRY" dump -t $W -D "$T/ui"
reap $W
restore_d "$T/ui"
grep -E '^(Uid|Gid|Groups|Cap)' /proc/$RP/status >"$T/creds.after"
[ -s "$T/creds.before" ] && cmp -s "$T/creds.before" "$T/creds.after" && ok "uids, gids, groups and capabilities as dumped" || fail "creds: $(diff "$T/creds.before" "$T/creds.after")"
cat /proc/$RP/limits >"$T/limits.after"
grep -q '^Max open files *1000 *2000' "$T/limits.before" && cmp -s "$T/limits.before" "$T/limits.after" && ok "rlimits as dumped" || fail "limits: $(diff "$T/limits.before" "$T/limits.after")"
memtest_check "$T/u/w.desc" "$RP" "the other user's process checks out"
kill -9 "$RP"

# 6. Refusals before anything is created, and a failure half-way.
count() { pgrep -f "$T/" | wc -l; }  # processes of this test only
before=$(count)
cp -a "$T/m" "$T/bad"
truncate -s -4096 "$T/bad/pages.img"
expect_rc 1 "a truncated pages.img is refused" "$FERRY" restore -D "$T/bad" -d
expect_in "$T/err" "pages.img" "names the truncated file"
rm -rf "$T/bad"; cp -a "$T/m" "$T/bad"
printf '\377' | dd of="$T/bad/pages.img" bs=1 seek=$((8192 + 5)) conv=notrunc status=none
expect_rc 1 "a corrupt page is refused" "$FERRY" restore -D "$T/bad" -d
expect_in "$T/err" "checksum mismatch" "names the checksum"
rm "$T/bad/inventory.img"
expect_rc 1 "an incomplete dump (no inventory) is refused" "$FERRY" restore -D "$T/bad" -d
cp -p "$T/m.desc.file" "$T/keep"
printf 'x' >>"$T/m.desc.file"
expect_rc 1 "a changed mapped file is refused" "$FERRY" restore -D "$T/m" -d
expect_in "$T/err" "m.desc.file\`: size" "names the changed file and its size"
cp -p "$T/keep" "$T/m.desc.file"  # same inode, size and mtime again
[ "$(count)" = "$before" ] && ok "no process was created by a refusal" || fail "memtest count $before -> $(count)"
FERRY_FAULT=restore-fail-after-memory "$FERRY" restore -D "$T/m" -d >"$T/out" 2>"$T/err"
[ $? -eq 1 ] && ok "a failure after the memory is built fails the restore" || fail "fault: exit $?"
expect_in "$T/err" "(killed)" "says the half-built process was killed"
sleep 0.2
gone "$W" && ok "no half-restored process left (PID $W)" || fail "PID $W still there: $(grep State /proc/$W/status)"
[ "$(count)" = "$before" ] && ok "and no other" || fail "memtest count $before -> $(count)"
finish
