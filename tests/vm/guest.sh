#!/bin/sh
# Inside the test guest (Debian 12's Linux 6.1 under KVM): the paths this
# project's own kernel never takes. Prints "GUEST: pass|fail|skip NAME"
# per test, "GUEST: skip NAME: why" for a whole test skipped (exit 77) and
# for each case a test skipped inside (skip_case in lib.sh), for
# tests/integration/kvm61.sh to collect and count on the host.
export FERRY=/ferry/ferry TOOLS=/ferry/tests
export TEST_TIMEOUT=${TEST_TIMEOUT:-600}
# Emulated, the guest runs about ten times slower than the host: half the
# host's dump-and-restore loops still take every fallback path many times.
export PREDUMP_LOOPS=${PREDUMP_LOOPS:-5}
export RESULTS=/tmp/guest-results SKIP_REASON_FILE=/tmp/guest-skip
SUB=$TOOLS/tools/subreaper

result() { # rc name
	case $1 in
	0) echo "GUEST: pass $2" ;;
	77) why=$(head -n 1 "$SKIP_REASON_FILE" 2>/dev/null); echo "GUEST: skip $2${why:+: $why}" ;;
	*) echo "GUEST: fail $2" ;;
	esac
	# The cases the test skipped inside ("skip NAME: why" from skip_case).
	sed -n 's/^skip /GUEST: skip /p' "$RESULTS" 2>/dev/null
	: >"$RESULTS"
	: >"$SKIP_REASON_FILE"
}
: >"$RESULTS"
: >"$SKIP_REASON_FILE"

# The kernel is what the harness claims: soft-dirty on, none of the new
# interfaces ferry prefers.
sh -c '
	j=$("$FERRY" check --json) || { echo "ferry check failed: $j"; exit 1; }
	for k in procmap_query pagemap_scan uffd_wp_async; do
		echo "$j" | grep -q "\"$k\":false" || { echo "expected no $k"; exit 1; }
	done
	echo "$j" | grep -q "\"soft_dirty\":true" || { echo "expected soft_dirty"; exit 1; }
	"$FERRY" check | sed -n "/^backends/,\$p"
'
result $? kernel-features

# Dump and restore with what auto picks here: maps layout, pagemap pages.
TEST_ID=fallback-dump-restore $SUB sh tests/vm/fallback.sh
result $? fallback-dump-restore

# The iterative pre-dump tests, with the trackers this kernel has.
TEST_ID=predump timeout -k 10 "$TEST_TIMEOUT" $SUB sh tests/integration/predump.sh
result $? predump

# This initramfs holds no modules, so this kernel really has no unix_diag
# (Debian: CONFIG_UNIX_DIAG=m): ferry check says so, and a dump of a process
# holding a Unix socket is refused before the freeze, naming the fd.
t0=$(date +%s)
TEST_ID=unixdiag-absent timeout -k 10 "$TEST_TIMEOUT" $SUB sh tests/integration/unixdiag.sh
result $? unixdiag-absent
echo "guest time: unixdiag-absent $(($(date +%s) - t0)) s"

# Then the module from the kernel's own package (tests/integration/kvm61.sh
# put it in /ferry/modules): Unix sockets are dumped as on the host.
UXD=
if [ ! -e /ferry/modules/unix_diag.ko ]; then
	UXD="no unix_diag.ko to load (not in the kernel package, or not downloaded)"
	echo "GUEST: skip unix_diag-loaded: $UXD"
elif insmod /ferry/modules/unix_diag.ko 2>/tmp/insmod.err &&
	"$FERRY" check --json | grep -q '"unix_diag":true'; then
	echo "GUEST: pass unix_diag-loaded"
else
	UXD="unix_diag.ko did not load: $(cat /tmp/insmod.err)"
	echo "GUEST: fail unix_diag-loaded: $UXD"
fi

# Fd kinds, process state, trees and their shared memory, on this kernel's own paths (procfs
# text, no PROCMAP_QUERY), with the host's sh (dash), ps and sleep from
# /ferry/bin first in PATH (tests/integration/kvm61.sh says why); tree.sh's
# cases needing bash or script(1), not in this initramfs, skip.
export PATH=/ferry/bin:$PATH
for t in fdkinds pstate tree cow; do
	if [ "$t" = tree ] && [ -n "$UXD" ]; then
		echo "GUEST: skip tree: no unix_diag ($UXD): the tree holds Unix sockets"
		continue
	fi
	t0=$(date +%s)
	TEST_ID=$t timeout -k 10 "$TEST_TIMEOUT" $SUB /ferry/bin/sh tests/integration/$t.sh
	result $? $t
	echo "guest time: $t $(($(date +%s) - t0)) s"
done
