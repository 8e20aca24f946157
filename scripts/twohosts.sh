# Two "hosts" on one machine: network namespaces joined by a veth pair.
# Sourced by scripts/demo.sh, tests/integration/migrate.sh, bench/b_migrate.sh.

# twohosts_up SRC DST NET VETH: namespaces SRC (NET.1) and DST (NET.2), NET
# like 10.197.0, joined by the veth pair VETHs/VETHd; fails if any step does.
twohosts_up() {
	ip netns add "$1" && ip netns add "$2" &&
		ip link add "${4}s" type veth peer name "${4}d" &&
		ip link set "${4}s" netns "$1" && ip link set "${4}d" netns "$2" &&
		ip -n "$1" addr add "$3.1/24" dev "${4}s" && ip -n "$2" addr add "$3.2/24" dev "${4}d" &&
		ip -n "$1" link set "${4}s" up && ip -n "$2" link set "${4}d" up &&
		ip -n "$1" link set lo up && ip -n "$2" link set lo up
}

# twohosts_down SRC DST: gone, the veth pair with them.
twohosts_down() {
	ip netns del "$1" 2>/dev/null || true
	ip netns del "$2" 2>/dev/null || true
}

# new_key FILE: 32 random bytes as hex, a pre-shared key for both ends
# (mode 0600: ferry refuses a key file others can read).
new_key() {
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1")
}
