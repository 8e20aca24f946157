#!/bin/sh
# ferry interrupted (SIGTERM) or killed (SIGKILL) at random points of a
# dump -R, pre-dump rounds, an iterative dump -R with auto-converge and a
# migration: each time the target (tests/workloads/selfcheck) must come out
# alive, untraced, running, with no fd or mapping of ferry's left, and say
# its memory, registers, pipe and threads are fine. A SIGTERM must end ferry
# with 143, "interrupted" and no inventory. A SIGKILL that lands inside one
# of the windows docs/SECURITY.md, "Signals" lists (ferry's -vv log says "kill-window
# open" without its close) is counted and reported as such, not failed: that
# is the price of ptrace injection the document states.
#
# KILL_TRIALS (default 50) kills in all, spread over the four commands,
# SIGKILL and SIGTERM alternating.
. "$(dirname "$0")/lib.sh"

TRIALS=${KILL_TRIALS:-50}
W=$TOOLS/workloads/selfcheck
[ -x "$W" ] || skip "no $W"

rand() { # 0..$1-1
	echo $(( $(od -An -N4 -tu4 /dev/urandom | tr -d ' ') % $1 ))
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

P=
start_target() {
	[ -n "$P" ] && kill -9 "$P" 2>/dev/null
	rm -f "$T"/w.*
	"$W" "$T/w" --mb 16 >/dev/null 2>"$T/w.err" &
	wait_for "$T/w.ready" || { fail "selfcheck did not start: $(cat "$T/w.err")"; finish; }
	P=$(cat "$T/w.ready")
	ls "/proc/$P/fd" >"$T/fd0"
	cat "/proc/$P/maps" >"$T/maps0"
}

# Every thread untraced and not stopped; a stop ferry's throttle guard
# continues goes within a moment.
untraced_running() {
	for _ in $(seq 40); do
		bad=
		for s in /proc/$P/task/*/status; do
			tp=$(awk '/^TracerPid:/ { print $2 }' "$s" 2>/dev/null)
			st=$(awk '/^State:/ { print $2 }' "$s" 2>/dev/null)
			[ "${tp:-0}" = 0 ] || bad="traced by $tp"
			case "$st" in T|t) bad="${bad:+$bad, }state $st" ;; esac
		done
		[ -z "$bad" ] && return 0
		sleep 0.05
	done
	echo "$bad"
	return 1
}

selfcheck() {
	rm -f "$T/w.check"
	kill -USR1 "$P" 2>/dev/null
	for _ in $(seq 60); do [ -s "$T/w.check" ] && break; sleep 0.05; done
	cat "$T/w.check" 2>/dev/null || echo "no answer in 3 s"
}

# What is wrong with the target now, or nothing.
target_problems() {
	if ! kill -0 "$P" 2>/dev/null; then echo "dead"; return; fi
	r=$(untraced_running) || { echo "$r"; return; }
	ls "/proc/$P/fd" >"$T/fd1"
	cmp -s "$T/fd0" "$T/fd1" || echo "fds now: $(tr '\n' ' ' <"$T/fd1")"
	cat "/proc/$P/maps" >"$T/maps1"
	cmp -s "$T/maps0" "$T/maps1" || echo "maps changed: $(diff "$T/maps0" "$T/maps1" | grep '^[<>]' | head -3 | tr '\n' ' ')"
	c=$(selfcheck)
	case "$c" in ok*) ;; *) echo "self-check: $c" ;; esac
}

PORT=$((30000 + $(rand 20000)))
PS=
page_server() {
	PORT=$((PORT + 1))
	rm -rf "$T/ps" "$T/ps.sock"
	"$FERRY" page-server -D "$T/ps" --address unix:$T/ps.sock >/dev/null 2>&1 &
	PS=$!
	for _ in $(seq 100); do
		[ -S "$T/ps.sock" ] && return 0
		sleep 0.02
	done
}

# cmd_args NAME: the command line of one run of NAME (pre-dump: round $K).
cmd_args() {
	case $1 in
	dump) echo "dump -R --skip-unsupported-fds -t $P -D $T/d" ;;
	pre-dump)
		if [ "$K" = 1 ]; then echo "pre-dump -t $P -D $T/p1"
		else echo "pre-dump -t $P -D $T/p$K --prev-images-dir ../p$((K - 1))"; fi ;;
	iterative) echo "dump --iterative -R --skip-unsupported-fds --auto-converge --max-rounds 4 --downtime-limit 1 -t $P -D $T/i" ;;
	migrate) echo "migrate --skip-unsupported-fds --max-rounds 3 --downtime-limit 1 -t $P --to unix:$T/ps.sock" ;;
	esac
}

out_dir() {
	case $1 in dump) echo "$T/d" ;; pre-dump) echo "$T/p$K" ;; iterative) echo "$T/i" ;; migrate) echo "$T/ps" ;; esac
}

# How long a whole run of each command takes here (the quicker of two; a
# pre-dump's later rounds, the quicker of rounds 2 and 3): the kills fall
# within.
start_target
for c in dump pre-dump iterative migrate; do
	best=
	for K in 1 2 3; do
		[ $c != pre-dump ] && [ $K = 3 ] && continue
		[ $c = migrate ] && page_server
		t0=$(now_ms)
		# shellcheck disable=SC2046
		"$FERRY" $(cmd_args $c) >"$T/cal.out" 2>&1
		rc=$?
		d=$(( $(now_ms) - t0 ))
		# The page server is given a moment to act on what the source said
	# last (an ABORT removes the final dump) before it is stopped.
	[ $c = migrate ] && { sleep 0.2; kill "$PS" 2>/dev/null; wait "$PS" 2>/dev/null; }
		[ $rc = 0 ] || fail "$c did not run to its end: $(head -c 300 "$T/cal.out")"
		if [ $c = pre-dump ] && [ $K = 1 ]; then dur_pre1=$d
		elif [ -z "$best" ] || [ "$d" -lt "$best" ]; then best=$d; fi
		[ $c = migrate ] && start_target
	done
	eval "dur_$(echo $c | tr -d -)=$best"
	echo "calibration: $c takes $best ms$([ $c = pre-dump ] && echo " (round 1: $dur_pre1 ms)")"
done
rm -rf "$T"/p[0-9]*

nk=0; nt=0; ncomplete=0; nwindow=0; summary=
i=0
while [ $i -lt "$TRIALS" ]; do
	c=$(echo dump pre-dump iterative migrate | cut -d' ' -f$((i % 4 + 1)))
	# Each command gets both signals in turn.
	sig=KILL; [ $(((i + i / 4) % 2)) = 1 ] && sig=TERM
	i=$((i + 1))
	K=1
	if [ $c = pre-dump ]; then
		# Rounds before the interrupted one run to their end (their
		# keepers hand the tracking on): the kill lands in round K.
		K=$((1 + $(rand 3)))
		rm -rf "$T"/p[0-9]*
		k=1
		while [ $k -lt $K ]; do
			K0=$K; K=$k
			# shellcheck disable=SC2046
			"$FERRY" $(cmd_args pre-dump) >/dev/null 2>&1 || fail "pre-dump round $k"
			K=$K0; k=$((k + 1))
		done
	fi
	[ $c = migrate ] && page_server
	dur=$(eval echo \$dur_$(echo $c | tr -d -))
	[ $c = pre-dump ] && [ $K = 1 ] && dur=$dur_pre1
	# Within the run as calibrated (a run here may be a little quicker).
	delay=$(rand $((dur * 3 / 4 + 1)))
	[ $c = migrate ] || rm -rf "$(out_dir $c)"
	rm -f "$T/log"
	# shellcheck disable=SC2046
	"$FERRY" -vv $(cmd_args $c) >"$T/out" 2>"$T/log" &
	F=$!
	sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
	kill -$sig $F 2>/dev/null
	wait $F
	rc=$?
	[ $c = migrate ] && { kill "$PS" 2>/dev/null; wait "$PS" 2>/dev/null; }
	[ $sig = KILL ] && nk=$((nk + 1)) || nt=$((nt + 1))
	what="$c, SIG$sig after $delay ms"
	# Once the destination said it restored the copy, the original is ended
	# (the hand-over's point of no return), whatever ferry's exit.
	# (A zombie is ended: the original is this shell's child, reaped late.)
	if [ $c = migrate ] && grep -q "destination restored" "$T/log" &&
		! grep -q '^State:[[:space:]]*[RSDTt]' /proc/$P/status 2>/dev/null; then
		rc=0
	fi
	if [ $rc = 0 ]; then
		# Done before the signal came: a migration ended the original.
		ncomplete=$((ncomplete + 1))
		summary="$summary $c:done"
		if [ $c = migrate ]; then start_target; continue; fi
	elif [ $sig = TERM ] && [ $rc = 143 ] && ! grep -q "^ferry" "$T/log" 2>/dev/null; then
		# Before ferry's main() installed its handler: it had done nothing.
		summary="$summary $c:term-at-exec"
	elif [ $sig = TERM ]; then
		[ $rc = 143 ] || fail "$what: exit $rc, want 143: $(tail -n 2 "$T/log")"
		grep -q "interrupted by SIGTERM" "$T/log" || fail "$what: no \"interrupted\" message: $(tail -n 2 "$T/log")"
		[ -e "$(out_dir $c)/inventory.img" ] && fail "$what: an inventory was written"
		summary="$summary $c:term"
	else
		summary="$summary $c:kill"
	fi
	win=
	[ $sig = KILL ] && [ $rc != 0 ] && win=$(open_windows "$T/log")
	probs=$(target_problems)
	if [ -n "$probs" ] && [ -n "$win" ]; then
		nwindow=$((nwindow + 1))
		echo "window: $what landed in $win: $probs"
		start_target
	elif [ -n "$probs" ]; then
		fail "$what (exit $rc): $probs; log ends: $(tail -n 1 "$T/log")"
		start_target
	else
		ok "$what (exit $rc)${win:+, inside $win but harmless}"
	fi
done
[ -n "$P" ] && kill -9 "$P" 2>/dev/null
# Nothing of the run may outlive it (tests/run.sh's subreaper waits for every
# descendant): say what is left, then end it.
sleep 0.5
left=$(pgrep -af "$T" | grep -v pgrep)
[ -n "$left" ] && echo "note: left running at the end, ended now: $left"
for p in $(pgrep -f "$T"); do kill -9 "$p" 2>/dev/null; done
echo "kills: $nk SIGKILL, $nt SIGTERM; $ncomplete ended before the signal; $nwindow in a known window"
echo "per command:$summary" | tr ' ' '\n' | sort | uniq -c | tr '\n' ' '; echo
finish
