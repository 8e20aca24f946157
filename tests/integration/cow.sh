#!/bin/sh
# Private memory a tree shares copy-on-write comes back shared (restore/cow.c).
# tests/workloads/cowtree: a parent with 64 MiB, three children and a
# grandchild, each having rewritten or dropped a part of its copy after the
# fork, each checking every page of its own on SIGUSR1.
#  1. dump, restore: every process's pages right; the tree's memory (the sum
#     of its processes' Pss) about what it was before the dump.
#  2. The same restore with the sharing turned off (FERRY_FAULT=restore-no-cow,
#     the path taken when there is no room for it): pages right, and the
#     memory several times larger -- what check 1 would see if it broke.
#  3. pre-dump + dump on top: shared again from the chain of images.
. "$(dirname "$0")/lib.sh"
MB=64
PIDS=""
trap 'for p in $PIDS; do kill -9 $p 2>/dev/null; done; rm -rf "$T"' EXIT

# start: a fresh cowtree; its five PIDs in $PIDS, the parent's in $R.
start() {
	rm -f "$T"/ctl.*
	R=$("$TOOLS/workloads/cowtree" "$T/ctl" $MB)
	# A minute at most: the 6.1 guest may run without KVM.
	for _ in $(seq 600); do [ -s "$T/ctl.ready" ] && break; sleep 0.1; done
	[ -s "$T/ctl.ready" ] || fail "cowtree did not start"
	PIDS=$(cat "$T/ctl.ready")
}
# pss: the tree's Pss in MiB, of the VMAs ferry may pass on copy-on-write
# (restore/cow.c: none over 16 GiB, a reservation such as ASan's shadow,
# whose pages each process has of its own after a restore).
pss() {
	t=0
	for p in $PIDS; do
		v=$(awk 'function h(s,  i, n) {
				n = 0
				for (i = 1; i <= length(s); i++)
					n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
				return n
			}
			/^[0-9a-f]+-[0-9a-f]+ / { split($1, a, "-"); size = h(a[2]) - h(a[1]); next }
			/^Pss:/ && size <= 17179869184 { t += $2 }
			END { print t + 0 }' /proc/"$p"/smaps 2>/dev/null)
		t=$((t + ${v:-0}))
	done
	echo $((t / 1024))
}
# checked WHAT: every process says its pages are right.
checked() {
	k=0 bad=""
	for p in $PIDS; do
		rm -f "$T/ctl.$k"
		kill -USR1 "$p" 2>/dev/null || bad="$bad $p:gone"
		k=$((k + 1))
	done
	k=0
	for p in $PIDS; do
		for _ in $(seq 600); do [ -s "$T/ctl.$k" ] && break; sleep 0.1; done
		v=$(cat "$T/ctl.$k" 2>/dev/null)
		[ "$v" = ok ] || bad="$bad $p:${v:-nothing}"
		k=$((k + 1))
	done
	[ -z "$bad" ] && ok "$1" || fail "$1:$bad"
}
# restored DIR DESC [ENV]: restore -d, every PID back.
restored() {
	d=$1 desc=$2; shift 2
	if env "$@" "$FERRY" -v restore -D "$d" -d >"$T/rst.out" 2>&1; then
		missing=""
		for p in $PIDS; do [ -d /proc/"$p" ] || missing="$missing $p"; done
		[ -z "$missing" ] && ok "$desc: the five processes are back" ||
			fail "$desc: missing$missing"
	else
		fail "$desc: $(tail -3 "$T/rst.out")"
	fi
}
# shared_again PSS WHO: PSS (MiB, after a restore) within a half and 4 MiB of
# $before, the tree's before its dump. Not closer: what children share only
# among themselves (a page their parent rewrote after the fork, as ASan's
# runtime does with its own) comes back a copy per child. Without sharing
# (2.) it is more than twice.
shared_again() {
	[ "$1" -le $((before * 3 / 2 + 4)) ] &&
		ok "$2 shares its memory again: Pss $1 MiB, ${before} MiB before" ||
		fail "$2 takes Pss $1 MiB, ${before} MiB before the dump"
}
end_tree() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	for p in $PIDS; do for _ in $(seq 100); do gone "$p" && break; sleep 0.05; done; done
}

# 1.
start
checked "before the dump, every process's pages are right"
before=$(pss)
[ "$before" -ge $MB ] && [ "$before" -lt $((MB * 2)) ] &&
	ok "the tree shares its memory before the dump (Pss ${before} MiB for ${MB} MiB x 5)" ||
	fail "cowtree's memory is not shared to begin with: Pss ${before} MiB"
expect_rc 0 "dump of the tree" "$FERRY" dump -t "$R" -D "$T/d"
all_gone $PIDS || fail "the dumped tree did not end"
restored "$T/d" "restore"
expect_in "$T/rst.out" "of children kept their parents' copy-on-write" "ferry says how much it kept shared"
after=$(pss)
checked "after the restore, every process's pages are right (dropped ones zero)"
shared_again "$after" "the restored tree"
end_tree

# 2.
restored "$T/d" "restore without sharing (FERRY_FAULT=restore-no-cow)" FERRY_FAULT=restore-no-cow
expect_in "$T/rst.out" "not kept (FERRY_FAULT)" "ferry says the sharing was not kept"
unshared=$(pss)
checked "without sharing, every process's pages are right too"
[ "$unshared" -ge $((before * 2)) ] &&
	ok "without sharing the tree takes Pss ${unshared} MiB: the Pss check above can fail" ||
	fail "without sharing the tree takes only Pss ${unshared} MiB (${before} MiB before)"
end_tree

# 3. (Measured as in 1, after the processes' own check: under ASan the
# check's allocations are part of what is then dumped.)
start
checked "before the pre-dump, every process's pages are right"
before=$(pss)
expect_rc 0 "pre-dump of the tree" "$FERRY" pre-dump -t "$R" -D "$T/p1"
expect_rc 0 "dump on top of it" "$FERRY" dump -t "$R" -D "$T/f" --prev-images-dir ../p1
all_gone $PIDS || fail "the dumped tree did not end"
restored "$T/f" "restore from the chain"
after=$(pss)
checked "from the chain, every process's pages are right"
shared_again "$after" "from the chain the tree"
end_tree

[ $fails -eq 0 ]
