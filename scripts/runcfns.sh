# Shell functions the runc tests share (sourced by tests/integration/runcnet.sh
# and runcpod.sh, after tests/integration/lib.sh). They use $B (the bundle),
# $R (its rootfs, where the workload keeps /tmp/count), $T, $FERRY and $CTRS
# (the containers to delete at exit).

# runc_needs: skip the script where runc or a static busybox is missing.
runc_needs() {
	command -v runc >/dev/null 2>&1 || skip "needs runc (make deps installs it)"
	bb=$(command -v busybox || true)
	[ -n "$bb" ] && ldd "$bb" 2>&1 | grep -q "not a dynamic" ||
		skip "needs a static busybox (busybox-static; make deps installs it)"
}
init_pid() { runc state "$1" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
# count: the container's counter (0 while it cannot be read).
count() {
	for _ in 1 2 3 4 5; do
		c=$(cat "$R/tmp/count" 2>/dev/null)
		case "$c" in ''|*[!0-9]*) sleep 0.02 ;; *) echo "$c"; return ;; esac
	done
	echo 0
}
advancing() { # DESC: the counter goes on
	c0=$(count); sleep 0.5; c1=$(count)
	[ "$c1" -gt "$c0" ] && ok "$1 (counter $c0 -> $c1)" || fail "$1: counter stuck at $c1"
}
start() { # ID: runc run -d, until the workload is ready and counting
	CTRS="$CTRS $1"
	rm -f "$R/tmp/ctl.ready" "$R/tmp/count"
	(cd "$B" && runc run -d "$1" </dev/null 2>&1 | cat >"$T/$1.out") &
	for _ in $(seq 100); do [ -n "$(init_pid "$1")" ] && break; sleep 0.05; done
	wait_for "$R/tmp/ctl.ready" && wait_for "$R/tmp/count"
}
restore_in() { # ID IMAGES: runc --criu $FERRY restore -d, one check
	rm -f "$T/rst.rc"
	( (cd "$B" && runc --criu "$FERRY" restore -d --image-path "$2" "$1" </dev/null 2>"$T/rst.err"
		echo $? >"$T/rst.rc") | cat >"$T/$1.out") &
	for _ in $(seq 300); do [ -s "$T/rst.rc" ] && break; sleep 0.05; done
	[ "$(cat "$T/rst.rc" 2>/dev/null)" = 0 ] && [ -n "$(init_pid "$1")" ] &&
		ok "runc restore -d of $2: running as $(init_pid "$1")" ||
		fail "runc restore -d of $2: $(cat "$T/rst.err"; tail -3 "$2/restore.log" 2>/dev/null)"
}
dirtier_of() { # PID: its child the dirtier
	for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		grep -qs "^Name:.*dirtier" /proc/"$c"/status && echo "$c"
	done
}
pages_right() { # PID: the dirtier PID finds every page of its right
	rm -f "$R/tmp/ctl.check"
	[ -n "$1" ] && kill -USR1 "$1" && wait_for "$R/tmp/ctl.check"
	case "$(verdict "$R/tmp/ctl.check")" in
	ok*) ok "every page of the restored dirtier is right" ;;
	*) fail "dirtier: '$(verdict "$R/tmp/ctl.check")'" ;;
	esac
}
