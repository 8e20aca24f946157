# Files as another host has them: copies, with other inodes and mtimes.
# Sourced by tests/integration/lib.sh and scripts/demo.sh; the work is done
# by scripts/with-copies (a script, so that `... &` gives the command's PID).
WITH_COPIES=$(cd "$(dirname "$0")/../.." 2>/dev/null && pwd)/scripts/with-copies
[ -x "$WITH_COPIES" ] || WITH_COPIES=$(cd "$(dirname "$0")/.." && pwd)/scripts/with-copies

# with_copies FILE... -- CMD...: CMD where each FILE is an identical copy.
with_copies() { "$WITH_COPIES" "$@"; }
# with_mounts SRC:DST... -- CMD...: CMD where each SRC is mounted over DST.
with_mounts() { "$WITH_COPIES" "$@"; }

# mapped_files PID: the files PID maps executable (its program and its
# libraries), one path a line.
mapped_files() {
	awk '$2 ~ /x/ && $6 ~ /^\// && NF == 6 {print $6}' "/proc/$1/maps" | sort -u
}

# program_files BIN...: each program and every library ldd says it loads,
# as real paths (the names the kernel shows in /proc/PID/maps).
program_files() {
	for b in "$@"; do
		readlink -f "$b"
		ldd "$b" 2>/dev/null | awk '/=> \// {print $3} /^\t\// {print $1}' |
			while read -r l; do readlink -f "$l"; done
	done | sort -u
}
