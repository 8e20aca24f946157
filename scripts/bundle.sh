# A busybox container's bundle for runc, as tests/integration/runc.sh and
# bench/b_runc.sh run one. Sourced.

# bundle_rootfs ROOTFS PROGRAM APPLET...: a static busybox with links for
# each APPLET, and PROGRAM (a test workload) with the libraries it loads,
# where it looks for them; /proc, /sys, /dev, /tmp to mount on.
bundle_rootfs() {
	r=$1
	prog=$2
	shift 2
	mkdir -p "$r/bin" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" &&
		cp "$(command -v busybox)" "$r/bin/busybox" || return 1
	for a in "$@"; do ln -s busybox "$r/bin/$a" || return 1; done
	cp "$prog" "$r/bin/$(basename "$prog")" || return 1
	for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do
		mkdir -p "$r$(dirname "$lib")" && cp "$lib" "$r$lib" || return 1
	done
}
