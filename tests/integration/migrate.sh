#!/bin/sh
# Live migration between two "hosts": network namespaces joined by a veth
# pair. A dirtying workload is moved with ferry migrate to a page server
# that restores it, and checks itself there; the hand-over is atomic when
# the connection drops mid-round, the destination's restore fails, or the
# key is wrong (the original runs on, intact); the page server refuses a
# malformed stream and names that leave DIR. Runs under tests/run.sh's
# subreaper.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../../scripts/twohosts.sh"
DIRTIER="$TOOLS/workloads/dirtier"
NS_SRC=ferry-src-$$
NS_DST=ferry-dst-$$
NET=10.199.$(( $$ % 200 ))
SRC_IP=$NET.1
DST_IP=$NET.2
PIDS=""
cleanup() {
	for p in $PIDS; do kill -9 $p 2>/dev/null; done
	twohosts_down $NS_SRC $NS_DST
	rm -rf "$T"
}
trap cleanup EXIT
# Keep the servers' logs of a failed run for a look afterwards.
keep_logs() { [ "$fails" -gt 0 ] && mkdir -p /tmp/ferry-migrate-logs && cp "$T"/*.err /tmp/ferry-migrate-logs/ 2>/dev/null; cleanup; }
trap keep_logs EXIT

twohosts_up $NS_SRC $NS_DST $NET vf$$ || skip "cannot create network namespaces and a veth pair here"
ok "two hosts: $NS_SRC ($SRC_IP) and $NS_DST ($DST_IP) joined by a veth pair"

new_key "$T/key"
new_key "$T/other-key"
PORT=$((20000 + $$ % 20000))

alive() { [ -d /proc/$1 ] && ! grep -q '^State:.*Z' /proc/$1/status 2>/dev/null; }

# start_dirtier CTL ARGS...: the workload on the source host; D its PID.
start_dirtier() {
	ctl=$1; shift
	rm -f "$ctl".*
	ip netns exec $NS_SRC "$DIRTIER" "$ctl" "$@" </dev/null >/dev/null 2>&1 &
	D=$!
	PIDS="$PIDS $D"
	wait_for "$ctl.ready" || fail "dirtier did not start"
}


# The destination host has its own copies of the workload's program and of
# every library it loads (scripts/with-copies: a mount namespace with the
# copies bind-mounted over the originals), so that nothing passes by
# sharing an inode with the source: restore checks files by content.
DST_FILES=$(program_files "$DIRTIER" | tr '\n' ' ')
# server NAME ARGS...: a page server on the destination host; S its PID.
server() {
	name=$1; shift
	rm -rf "$T/$name" "$T/$name.pid" "$T/$name.out"
	# shellcheck disable=SC2086
	"$WITH_COPIES" $DST_FILES -- ip netns exec $NS_DST env ${SFAULT:-} "$FERRY" page-server -D "$T/$name" \
		--address $DST_IP --port $PORT --pidfile "$T/$name.pid" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" &
	S=$!
	PIDS="$PIDS $S"
	for _ in $(seq 100); do grep -q listening "$T/$name.out" 2>/dev/null && break; sleep 0.05; done
}

migrate() {
	ip netns exec $NS_SRC env ${CFAULT:-} "$FERRY" migrate -t $D --to $DST_IP:$PORT "$@" \
		>"$T/out" 2>"$T/err"
}

# 1. The migration itself: rounds, downtime, the workload intact there. The
#    destination builds the process while the rounds arrive (warm), with the
#    layout changing between rounds (--churn); 1b does it all at the end.
for run in warm cold warm+zstd; do
mode=${run%+*}
start_dirtier "$T/w" --mb 64 --rate 32 --churn 20
if [ $mode = warm ]; then server dst --auth-key "$T/key" --restore -v
else server dst --auth-key "$T/key" --restore --cold -v; fi
# The cold run asks for the pipe the frozen target vmsplices into; over TLS
# the pages still go through a buffer (2d splices them into a Unix socket).
if [ $run = warm+zstd ]; then migrate --auth-key "$T/key" --compress
elif [ $run = cold ]; then migrate --auth-key "$T/key" -v --reader vmsplice
else migrate --auth-key "$T/key"; fi
rc=$?
cp "$T/out" "$T/mig.out"
[ $rc = 0 ] && ok "migrate exits 0" || fail "migrate: exit $rc: $(cat "$T/err")"
wait $S
[ $? = 0 ] && ok "the page server exits 0" || fail "page server: $(cat "$T/dst.err")"
expect_in "$T/out" "moved process $D" "says what moved where"
expect_in "$T/out" "downtime" "reports the downtime"
# TLS encrypts in user space here: the pages cannot be spliced into it.
[ $run = cold ] && expect_in "$T/err" "not spliced" "cold: --reader vmsplice falls back to the buffer over TLS"
grep -q '^ *1 ' "$T/out" && ok "prints the rounds" || fail "no round table: $(cat "$T/out")"
for _ in $(seq 100); do alive $D || break; sleep 0.05; done
alive $D && fail "the original still runs after the hand-over" || ok "the original is gone"
RP=$(cat "$T/dst.pid" 2>/dev/null)
if [ -n "$RP" ] && alive "$RP"; then
	PIDS="$PIDS $RP"
	ok "the restored process runs on the destination"
	grep -q '^State:.*T' /proc/$RP/status && fail "it was left stopped"
	check_mem "$T/w" $RP "every page arrived intact (the workload checked itself)"
	[ "$(stat -L -c %i /proc/$RP/exe)" != "$(stat -c %i "$(readlink -f "$DIRTIER")")" ] &&
		ok "it runs the destination's copy of the program (another inode)" ||
		fail "it runs the source's program file"
	[ "$(readlink /proc/$RP/ns/net)" = "$(ip netns exec $NS_DST readlink /proc/self/ns/net)" ] &&
		ok "it runs in the destination's network namespace" ||
		fail "it is not in the destination host's namespace"
	kill -9 $RP
else
	fail "no restored process on the destination: $(cat "$T/dst.err")"
fi
expect_rc 0 "the received images verify" "$FERRY" show --verify "$T/dst"
expect_in "$T/dst.err" "($mode)" "the destination restored it $mode"
[ $run = warm+zstd ] && expect_in "$T/mig.out" "on the wire, zstd" "sent zstd-compressed"
[ $mode = warm ] && expect_in "$T/dst.err" "warm restore: process" "built from round one on"
done

# 1c. Separate commands, as with criu: pre-dump, pre-dump, ..., dump, each with
#     --page-server, one connection each; the server builds the process warm
#     across them (the layout churning every 5 ms) and restores the final dump.
start_dirtier "$T/s" --mb 32 --rate 16 --churn 5
server sep --auth-key "$T/key" --restore -v
mkdir -p "$T/local"
PS="--page-server --address $DST_IP --port $PORT --auth-key $T/key"
expect_rc 0 "pre-dump --page-server" ip netns exec $NS_SRC "$FERRY" pre-dump -t $D -D "$T/local/p1" $PS
expect_in "$T/out" "sent to the page server" "says it sent the round"
for k in 2 3 4; do
	sleep 0.2
	expect_rc 0 "pre-dump $k --page-server" ip netns exec $NS_SRC "$FERRY" pre-dump -t $D \
		-D "$T/local/p$k" --prev-images-dir ../p$((k - 1)) $PS
done
expect_rc 0 "dump --page-server" ip netns exec $NS_SRC "$FERRY" dump -t $D -D "$T/local/d" \
	--prev-images-dir ../p4 $PS
wait $S
[ $? = 0 ] && ok "the page server took four rounds and the dump, one connection each" ||
	fail "page server: $(cat "$T/sep.err")"
expect_in "$T/sep.err" "(warm)" "built warm across the separate commands"
[ -e "$T/local/p3/inventory.img" ] && ok "the metadata stays in -D" || fail "no local metadata"
size=$(stat -c %s "$T/local/p1/pages.img")
used=$(($(stat -c %b "$T/local/p1/pages.img") * $(stat -c %B "$T/local/p1/pages.img")))
[ "$used" -lt $((size / 10)) ] && ok "the pages are on the page server only ($used of $size bytes kept)" ||
	fail "the pages stayed in -D too ($used of $size bytes)"
RP=$(cat "$T/sep.pid" 2>/dev/null)
if [ -n "$RP" ] && alive "$RP"; then
	PIDS="$PIDS $RP"
	check_mem "$T/s" $RP "the process restored from separate commands is intact"
	kill -9 $RP
else
	fail "nothing restored from the separate commands: $(cat "$T/sep.err")"
fi
expect_rc 2 "--address without --page-server" "$FERRY" pre-dump -t 1 -D "$T/x" --address 1.2.3.4

# 1d. A source that never comes back: the server gives up after its idle
#     timeout and kills what it had built; nothing is left running.
start_dirtier "$T/i" --mb 8 --rate 8
server idle --restore --auth-key "$T/key" --idle-timeout 2 -v
expect_rc 0 "one pre-dump, then nothing" ip netns exec $NS_SRC "$FERRY" pre-dump -t $D \
	-D "$T/local/i1" $PS
wait $S
[ $? = 1 ] && ok "the page server gives up after its idle timeout" || fail "it did not give up"
expect_in "$T/idle.err" "giving up" "says it gave up"
expect_in "$T/idle.err" "warm restore: process" "it had built the process from round one"
sleep 0.2
# The half-built child is a fork of the server: it would still show its
# command line (its memory is the dumped process's, its mm fields not yet).
if pgrep -f "page-server -D $T/idle" >/dev/null; then
	fail "a half-built process is left: $(pgrep -af "page-server -D $T/idle")"
else
	ok "no half-built process is left"
fi
kill -9 $D

# 1e. The process state through the warm restore: rsttest (a file written
#     at its own offset, four threads, AVX registers, a handler, a pending
#     blocked signal, a shared file mapping) moved, then it checks itself.
mkdir -p "$T/rt"
ip netns exec $NS_SRC "$TOOLS/workloads/rsttest" "$T/rt" </dev/null >/dev/null 2>&1 &
D=$!
PIDS="$PIDS $D"
for _ in $(seq 100); do [ -e "$T/rt/ready" ] && break; sleep 0.05; done
[ -e "$T/rt/ready" ] || fail "rsttest did not start"
sleep 0.3
kill -s RTMIN+1 $D
server rts --auth-key "$T/key" --restore -v
migrate --auth-key "$T/key"
[ $? = 0 ] && ok "rsttest migrated" || fail "migrate rsttest: $(cat "$T/err")"
wait $S
expect_in "$T/rts.err" "(warm)" "rsttest restored warm"
RP=$(cat "$T/rts.pid" 2>/dev/null)
if [ -n "$RP" ] && alive "$RP"; then
	PIDS="$PIDS $RP"
	rsttest_check "$T/rt" "$RP"
	c=$RST
	case "$c" in ok*) ok "rsttest checks itself after the migration: $c" ;; *) fail "rsttest: $c" ;; esac
	case "$c" in *" pending=1"*) ok "the pending signal travelled" ;; *) fail "pending: $c" ;; esac
	kill -9 "$RP"
	log_goes_on "$T/rt/log" "its log goes on at the offset it had, no gap or overwrite"
else
	fail "no migrated rsttest: $(cat "$T/rts.err")"
fi

# 2. Wrong key: refused both ways, nothing sent, the original runs on. The
#    server logs the refused peer and goes on accepting: the right key then
#    migrates through the same server.
start_dirtier "$T/k" --mb 8 --rate 8
server wk --auth-key "$T/key" --restore
migrate --auth-key "$T/other-key"
[ $? = 1 ] && ok "a wrong key fails the migration" || fail "wrong key accepted"
expect_in "$T/err" "key" "says the key is the problem"
expect_in "$T/err" "runs on here" "says the process runs on"
alive $S && ok "the page server goes on after a peer that did not authenticate" ||
	fail "one bad peer ended the page server"
expect_in "$T/wk.err" "did not authenticate" "the server logs why"
[ ! -e "$T/wk/inventory.img" ] && ok "nothing received" || fail "images received without the key"
# A peer that sends garbage instead of a TLS handshake, and one that says
# nothing at all, are dropped too.
ip netns exec $NS_SRC python3 -c "
import socket; s = socket.create_connection(('$DST_IP', $PORT)); s.sendall(b'GET / HTTP/1.0\r\n\r\n'); s.recv(64)" 2>/dev/null
ip netns exec $NS_SRC python3 -c "
import socket, time; s = socket.create_connection(('$DST_IP', $PORT)); time.sleep(12)" &
SILENT=$!
sleep 0.3
migrate
[ $? = 1 ] && expect_in "$T/err" "no credentials" "no key at all: the source refuses to send" ||
	fail "migrated without a key"
check_mem "$T/k" $D "the original is intact after the refusals"
migrate --auth-key "$T/key"
[ $? = 0 ] && ok "the right key then migrates through the same server, a silent peer pending" ||
	fail "migrate after the refusals: $(cat "$T/err")"
wait $S
[ $? = 0 ] && ok "the page server exits 0" || fail "page server: $(cat "$T/wk.err")"
RP=$(cat "$T/wk.pid" 2>/dev/null)
if [ -n "$RP" ] && alive "$RP"; then
	PIDS="$PIDS $RP"
	check_mem "$T/k" $RP "the process migrated after the refusals is intact"
	kill -9 $RP
else
	fail "nothing restored after the refusals: $(cat "$T/wk.err")"
fi
kill $SILENT 2>/dev/null

# 2b. A relay on the path records the whole migration: it works through the
#     relay, and none of the workload's memory is in what the relay saw.
start_dirtier "$T/m" --mb 32 --rate 8
server mitm --auth-key "$T/key" --restore --idle-timeout 60
RPORT=$((PORT + 1))
# relay REC ARGS...: the relay on the destination host, in front of PORT.
relay() {
	rec=$1; shift
	rm -f "$T/relay.out"
	ip netns exec $NS_DST python3 "$(dirname "$0")/relay.py" $DST_IP:$RPORT $DST_IP:$PORT \
		"$rec" "$@" >"$T/relay.out" 2>&1 &
	PIDS="$PIDS $!"
	for _ in $(seq 100); do grep -q ready "$T/relay.out" 2>/dev/null && break; sleep 0.05; done
}
relay "$T/relay.rec"
ip netns exec $NS_SRC "$FERRY" migrate -t $D --to $DST_IP:$RPORT --auth-key "$T/key" \
	>"$T/out" 2>"$T/err"
[ $? = 0 ] && ok "the migration works through a relay" || fail "through the relay: $(cat "$T/err")"
wait $S
RP=$(cat "$T/mitm.pid" 2>/dev/null)
[ -n "$RP" ] && PIDS="$PIDS $RP" && check_mem "$T/m" $RP "the process moved through the relay is intact"
set -- $(python3 "$(dirname "$0")/sample_pages.py" "$T/mitm/pre-1" "$T/relay.rec" 200)
[ "${3:-0}" -ge 100 ] && [ "$2" = "$3" ] && ok "sampled $3 pieces of the workload's memory" ||
	fail "sampling the received pages failed: $*"
[ "${1:-1}" = 0 ] && ok "the relay saw none of them ($(stat -c %s "$T/relay.rec") bytes recorded)" ||
	fail "the relay saw $1 of $3 pieces of the workload's memory in clear"
[ -n "$RP" ] && kill -9 $RP

# 2c. A relay that inverts one byte deep in the stream: the migration fails,
#     the original runs on intact and untraced, nothing runs on the
#     destination.
start_dirtier "$T/t" --mb 32 --rate 8
server tamper --auth-key "$T/key" --restore --idle-timeout 60
relay "$T/tamper.rec" --flip $((3 << 20))
ip netns exec $NS_SRC "$FERRY" migrate -t $D --to $DST_IP:$RPORT --auth-key "$T/key" \
	>"$T/out" 2>"$T/err"
[ $? = 1 ] && ok "one inverted byte fails the migration" || fail "a tampered stream went through"
expect_in "$T/err" "runs on here" "says the original runs on"
wait $S
[ $? = 1 ] && ok "the page server refuses the tampered stream" || fail "page server: exit 0"
expect_in "$T/tamper.err" "TLS" "the server names the broken record"
sleep 0.2
if alive $D; then
	grep -q '^State:.*T' /proc/$D/status && fail "the original was left stopped" ||
		ok "the original runs"
	[ "$(sed -n 's/^TracerPid:[[:space:]]*//p' /proc/$D/status)" = 0 ] &&
		ok "the original is not traced" || fail "the original is still traced"
	check_mem "$T/t" $D "the original is intact after the tampering"
else
	fail "the original died"
fi
[ ! -s "$T/tamper.pid" ] && ! pgrep -f "page-server -D $T/tamper" >/dev/null &&
	ok "no copy runs on the destination" || fail "a copy was left on the destination"
kill -9 $D

# 2e. Certificates instead of a key (CRIU's --tls-* options): a CA signs the
#     destination's certificate (for its address) and the source's; a client
#     certificate from another CA is refused, and so is a server whose
#     certificate names another host.
certs() { # DIR: ca, srv (for DST_IP), cli, and a foreign CA's cli2
	(cd "$1" && umask 077 &&
	 for ca in ca ca2; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
			-keyout $ca.key -out $ca.crt -subj "/CN=ferry test $ca" 2>/dev/null || exit 1
	 done
	 printf 'subjectAltName=IP:%s\n' "$DST_IP" >srv.ext
	 printf 'subjectAltName=IP:192.0.2.7\n' >other.ext
	 for c in srv:ca:srv.ext cli:ca: cli2:ca2: other:ca:other.ext; do
		n=${c%%:*}; r=${c#*:}; ca=${r%%:*}; ext=${r#*:}
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key \
			-out $n.csr -subj "/CN=ferry $n" 2>/dev/null &&
		openssl x509 -req -in $n.csr -CA $ca.crt -CAkey $ca.key -CAcreateserial -days 1 \
			${ext:+-extfile $ext} -out $n.crt 2>/dev/null || exit 1
	 done)
}
mkdir -p "$T/pki"
if certs "$T/pki"; then
	P="$T/pki"
	start_dirtier "$T/x" --mb 16 --rate 8
	server tls --tls-cert $P/srv.crt --tls-key $P/srv.key --tls-cacert $P/ca.crt --restore \
		--idle-timeout 60
	migrate --tls-cert $P/cli2.crt --tls-key $P/cli2.key --tls-cacert $P/ca.crt
	[ $? = 1 ] && ok "a client certificate from another CA is refused" ||
		fail "a foreign client certificate was accepted"
	check_mem "$T/x" $D "the original is intact after the refusal"
	migrate --tls-cert $P/cli.crt --tls-key $P/cli.key --tls-cacert $P/ca.crt
	[ $? = 0 ] && ok "migrated with certificates" || fail "with certificates: $(cat "$T/err")"
	wait $S
	RP=$(cat "$T/tls.pid" 2>/dev/null)
	[ -n "$RP" ] && PIDS="$PIDS $RP" && check_mem "$T/x" $RP "moved with certificates, intact"
	[ -n "$RP" ] && kill -9 $RP
	expect_in "$T/tls.err" "did not authenticate" "the server logged the foreign certificate"
	start_dirtier "$T/y" --mb 8 --rate 8
	server tls2 --tls-cert $P/other.crt --tls-key $P/other.key --tls-cacert $P/ca.crt \
		--restore --idle-timeout 5
	migrate --tls-cert $P/cli.crt --tls-key $P/cli.key --tls-cacert $P/ca.crt
	[ $? = 1 ] && ok "a server certificate for another host is refused" ||
		fail "the server's name was not checked"
	migrate --tls-cert $P/cli.crt --tls-key $P/cli.key --tls-cacert $P/ca.crt --tls-no-cn-verify
	[ $? = 0 ] && ok "--tls-no-cn-verify accepts it" || fail "--tls-no-cn-verify: $(cat "$T/err")"
	wait $S
	RP=$(cat "$T/tls2.pid" 2>/dev/null)
	[ -n "$RP" ] && kill -9 $RP
	chmod 644 $P/cli.key
	migrate --tls-cert $P/cli.crt --tls-key $P/cli.key --tls-cacert $P/ca.crt
	[ $? = 1 ] && expect_in "$T/err" "0600" "a private key others can read is refused" ||
		fail "a private key others can read was used"
	kill -9 $D
else
	skip_case "2e certificates: openssl cannot make test certificates here"
fi

# 2d. A local user without the key: the TCP server does not let them
#     authenticate, and the keyless Unix socket does not let them in.
start_dirtier "$T/u" --mb 8 --rate 8
server lu --address unix:$T/lu.sock --restore --idle-timeout 20
chmod 755 "$T"
ip netns exec $NS_DST setpriv --reuid=65534 --regid=65534 --clear-groups \
	/usr/bin/python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect('$T/lu.sock'); s.sendall(b'x' * 64); s.recv(64); print('connected')
except OSError as e:
    print('refused:', e)" >"$T/lu.user" 2>&1
expect_in "$T/lu.user" "refused" "another user cannot reach the keyless Unix socket"
# No TLS on the Unix socket: the frozen round's pages go from the pipe the
# target vmsplices into straight into the socket.
ip netns exec $NS_SRC "$FERRY" migrate -t $D --to unix:$T/lu.sock -v --reader vmsplice \
	>"$T/out" 2>"$T/err"
[ $? = 0 ] && ok "root migrates through the Unix socket without a key" ||
	fail "unix: $(cat "$T/err")"
expect_in "$T/err" "vmsplices into" "the final dump went through the pipe into the socket"
wait $S
RP=$(cat "$T/lu.pid" 2>/dev/null)
[ -n "$RP" ] && PIDS="$PIDS $RP" && check_mem "$T/u" $RP "moved over the Unix socket, intact"
[ -n "$RP" ] && kill -9 $RP
chmod 700 "$T"

# 3. The destination's restore fails: the source resumes its original.
start_dirtier "$T/r" --mb 16 --rate 16
SFAULT=FERRY_FAULT=restore-fail-after-memory server rf --restore --auth-key "$T/key"
migrate --auth-key "$T/key"
[ $? = 1 ] && ok "a failed restore fails the migration" || fail "migrate: $(cat "$T/out")"
expect_in "$T/err" "could not restore" "says the destination could not restore"
expect_in "$T/err" "runs on here" "says the original runs on"
wait $S
sleep 0.2
if alive $D; then
	grep -q '^State:.*T' /proc/$D/status && fail "the original was left stopped" ||
		ok "the original runs again"
	check_mem "$T/r" $D "the original is intact"
else
	fail "the original is gone after a failed restore: neither side has it"
fi
kill -9 $D

# 3a. dump --page-server: the process is ended only once the page server has
#     its dump. A page server that cannot take it: the process runs on. One
#     that never answers: --handover-timeout, then the process runs on. With
#     -R the dump is a snapshot the page server never starts.
start_dirtier "$T/h" --mb 16 --rate 16
mkdir -p "$T/local"
SFAULT=FERRY_FAULT=restore-fail-after-memory server hf --restore --auth-key "$T/key"
expect_rc 1 "dump --page-server to a page server that cannot restore fails" \
	ip netns exec $NS_SRC "$FERRY" dump -t $D -D "$T/local/hf" $PS
expect_in "$T/err" "was left running" "says the process runs on"
wait $S
alive $D && check_mem "$T/h" $D "the process was not ended: it runs on intact" ||
	fail "dump --page-server lost the process"
SFAULT=FERRY_FAULT=stall-before-result server hs --restore --auth-key "$T/key"
expect_rc 1 "a page server that never answers: the hand-over times out" \
	ip netns exec $NS_SRC "$FERRY" dump -t $D -D "$T/local/hs" $PS --handover-timeout 2
expect_in "$T/err" "handover-timeout" "says the hand-over took too long"
kill -9 $S 2>/dev/null
if alive $D; then
	grep -q '^State:.*T' /proc/$D/status && fail "left stopped after the timeout" ||
		ok "the process resumed after the timeout"
	check_mem "$T/h" $D "and is intact"
else
	fail "the process died in the timed-out hand-over"
fi
server snap --restore --auth-key "$T/key"
expect_rc 0 "dump -R --page-server to a --restore page server" \
	ip netns exec $NS_SRC "$FERRY" dump -t $D -D "$T/local/snap" -R $PS
wait $S
[ -e "$T/snap/snap/inventory.img" ] && ok "the page server stored the snapshot" ||
	fail "no snapshot stored: $(cat "$T/snap.err")"
[ ! -s "$T/snap.pid" ] && ok "and started no second copy of the running process" ||
	fail "a second copy runs: $(cat "$T/snap.pid")"
alive $D && check_mem "$T/h" $D "the original runs on intact" || fail "the original died"
kill -9 $D

# 3b. The warm restore fails at the end: the destination restores the final
#     dump from scratch instead, and the migration goes through.
start_dirtier "$T/f" --mb 16 --rate 16
SFAULT=FERRY_FAULT=warm-restore-fail server wf --restore --auth-key "$T/key"
migrate --auth-key "$T/key"
[ $? = 0 ] && ok "a failed warm restore falls back to a cold one" || fail "migrate: $(cat "$T/err")"
wait $S
expect_in "$T/wf.err" "from scratch" "the destination says so"
RP=$(cat "$T/wf.pid" 2>/dev/null)
if [ -n "$RP" ] && alive "$RP"; then
	PIDS="$PIDS $RP"
	check_mem "$T/f" $RP "restored cold after the warm failure, intact"
	kill -9 $RP
else
	fail "nothing restored after the warm failure"
fi

# 4. The connection drops in the middle of a round.
start_dirtier "$T/c" --mb 32 --rate 16
server cut --restore --auth-key "$T/key"
CFAULT=FERRY_FAULT=drop-connection-mid-round migrate --auth-key "$T/key"
[ $? = 1 ] && ok "a dropped connection fails the migration" || fail "migrate went on"
expect_in "$T/err" "runs on here" "says the original runs on"
wait $S
[ $? = 1 ] && ok "the page server reports the loss" || fail "page server exit 0"
[ ! -e "$T/cut/inventory.img" ] && ok "no complete-looking dump on the destination" ||
	fail "a cut round looks complete"
alive $D && check_mem "$T/c" $D "the original is intact" || fail "the original died"
kill -9 $D

# 5. Malformed streams from a peer past authentication (root, on the keyless
#    Unix socket): garbage, a name leaving DIR, an oversized frame, ...
stream() {
	ip netns exec $NS_SRC python3 - "$T/$2.sock" "$1" <<'PY'
import socket, struct, sys
path, kind = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
def frame(t, payload):
    return struct.pack('<IIQ', 0x4d595246, t, len(payload)) + payload
def pb_bytes(field, b):
    return bytes([field << 3 | 2, len(b)]) + b
def pb_varint(field, v):
    out = bytes([field << 3])
    while True:
        b = v & 0x7f; v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v: return out
s.recv(4096)                                   # the server's HELLO
s.sendall(frame(1, pb_varint(1, 3)))
if kind == 'garbage':
    s.sendall(b'GET / HTTP/1.0\r\n\r\n' + b'x' * 64)
elif kind == 'escape':
    s.sendall(frame(3, pb_bytes(1, b'') + pb_bytes(2, b'../../escape.img') + pb_varint(3, 4)) + b'evil')
elif kind == 'huge':
    s.sendall(struct.pack('<IIQ', 0x4d595246, 3, 1 << 40))
elif kind == 'pages-beyond':
    # a piece of pages.img far past --max-file-size
    s.sendall(frame(9, pb_bytes(1, b'pre-1') + pb_varint(2, 1 << 45) + pb_varint(3, 4)) + b'page')
elif kind == 'pages-unfinished':
    # pages streamed, then the round ends without the FILE that completes them
    s.sendall(frame(9, pb_bytes(1, b'pre-1') + pb_varint(2, 0) + pb_varint(3, 4)) + b'page'
              + frame(4, pb_bytes(1, b'pre-1')))
elif kind == 'pages-short':
    # pages.img announced smaller than what was streamed into it
    s.sendall(frame(9, pb_bytes(1, b'pre-1') + pb_varint(2, 8192) + pb_varint(3, 4)) + b'page'
              + frame(3, pb_bytes(1, b'pre-1') + pb_bytes(2, b'pages.img') + pb_varint(3, 4096) + pb_varint(5, 1)))
elif kind == 'zstd':
    s.sendall(frame(3, pb_bytes(1, b'') + pb_bytes(2, b'pages.img') + pb_varint(3, 4096) + pb_varint(4, 1))
              + struct.pack('<II', 16, 1 << 30) + b'z' * 16)
s.settimeout(5)
try: s.recv(4096)
except Exception: pass
PY
}
for kind in garbage escape huge zstd pages-beyond pages-unfinished pages-short; do
	server bad-$kind --address unix:$T/bad-$kind.sock
	stream $kind bad-$kind
	wait $S
	[ $? = 1 ] && ok "malformed stream ($kind): refused" || fail "malformed stream ($kind) accepted"
done
expect_in "$T/bad-garbage.err" "not a ferry stream" "garbage: says it is not a ferry stream"
expect_in "$T/bad-escape.err" "refused file name" "a name leaving DIR: refused"
[ ! -e "$T/escape.img" ] && [ ! -e "$T/../escape.img" ] && ok "nothing written outside DIR" ||
	fail "a file was written outside DIR"
expect_in "$T/bad-huge.err" "bytes (at most" "an oversized frame: refused before reading it"
expect_in "$T/bad-zstd.err" "bad zstd block" "a zstd block claiming 1 GiB: refused"
expect_in "$T/bad-pages-beyond.err" "beyond the" "pages far past the size bound: refused"
expect_in "$T/bad-pages-unfinished.err" "incomplete" "a round whose pages.img never completes: refused"
expect_in "$T/bad-pages-short.err" "but pages came up to" "pages.img smaller than its pages: refused"
[ ! -e "$T/bad-pages-unfinished/pre-1/pages.img.part" ] && [ ! -e "$T/bad-pages-unfinished/pre-1/pages.img" ] &&
	ok "an unfinished streamed pages.img is removed" || fail "an unfinished pages.img stays behind"

# 6. No TCP listener without credentials, loopback included; no key file
#    others can read.
expect_rc 2 "no key on a routable address is a usage error" \
	"$FERRY" page-server -D "$T/nokey" --address 0.0.0.0 --port $PORT
expect_rc 2 "no key on loopback is a usage error too" \
	"$FERRY" page-server -D "$T/nokey" --address 127.0.0.1 --port $PORT
expect_rc 2 "--no-auth is refused" "$FERRY" page-server -D "$T/nokey" --no-auth
cp "$T/key" "$T/open-key" && chmod 644 "$T/open-key"
expect_rc 1 "a key file others can read is refused" \
	"$FERRY" page-server -D "$T/nokey" --address 127.0.0.1 --port $PORT --auth-key "$T/open-key"
expect_in "$T/err" "0600" "says the key file must be 0600"
finish
