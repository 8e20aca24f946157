#!/bin/sh
# A kernel without unix_diag (CONFIG_UNIX_DIAG=m and the module not loaded,
# as in the Linux 6.1 guest's initramfs before tests/vm/guest.sh loads it):
# `ferry check` says so, and a dump of a process holding a Unix socket is
# refused before the freeze, naming the fd and the missing module, and the
# process runs on; a process holding only a pipe is still dumped. Where the
# kernel has unix_diag its absence is forced with
# FERRY_HIDE_FEATURES=unix_diag, as every missing feature is forced in these
# tests: only the probe's answer changes, so what is tested is ferry's
# answer to it.
. "$(dirname "$0")/lib.sh"
SKCHECK="$TOOLS/workloads/skcheck"
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT
MSG="this kernel has no unix_diag (CONFIG_UNIX_DIAG; modprobe unix_diag)"

expect_rc 0 "ferry check" "$FERRY" check --json
if grep -q '"unix_diag":true' "$T/out"; then
	HIDE=unix_diag
	ok "this kernel has unix_diag: its absence is forced (FERRY_HIDE_FEATURES=unix_diag)"
else
	HIDE=
	expect_in "$T/out" "CONFIG_UNIX_DIAG" "ferry check says unix_diag is missing, and why"
fi
export FERRY_HIDE_FEATURES="${FERRY_HIDE_FEATURES:+$FERRY_HIDE_FEATURES,}$HIDE"
expect_rc 0 "ferry check without unix_diag still exits 0 (not essential)" "$FERRY" check --json
expect_in "$T/out" '"unix_diag":false' "ferry check reports unix_diag missing"

# A process holding Unix sockets of every kind (and pipes).
mkdir "$T/sk"
"$SKCHECK" "$T/sk/o" </dev/null >/dev/null 2>&1 &
K=$!
PIDS="$PIDS $K"
wait_for "$T/sk/o.ready" || fail "skcheck did not start"
expect_rc 1 "a process holding Unix sockets is refused" "$FERRY" dump -t $K -D "$T/d"
expect_in "$T/err" "process $K fd " "the refusal names the process and the fd"
expect_in "$T/err" "(socket:[" "and its kind"
expect_in "$T/err" "$MSG" "and says the kernel has no unix_diag"
[ -e "$T/d/inventory.img" ] && fail "a refused dump left an inventory" || ok "no dump written"
grep -q '^State:.*[tT]' /proc/$K/status 2>/dev/null && fail "the refused process is stopped" ||
	{ kill -0 $K 2>/dev/null && ok "the process runs on, never frozen" || fail "the refused process is gone"; }

# A process with only a pipe needs no unix_diag.
sh -c 'echo $$ >"$1"; exec sleep 1000' sh "$T/sleep.pid" </dev/null 2>/dev/null | cat >/dev/null &
C=$!
wait_for "$T/sleep.pid"
PIDS="$PIDS $C $(cat "$T/sleep.pid")"
for _ in $(seq 100); do ls -l /proc/$C/fd/0 2>/dev/null | grep -q pipe: && break; sleep 0.05; done
expect_rc 0 "a process holding a pipe is dumped without unix_diag" "$FERRY" dump -t $C -D "$T/p"
finish
