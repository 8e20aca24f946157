#!/bin/sh
# The fallbacks on a real older kernel: Debian 12's own Linux 6.1 (soft-dirty
# on; no PROCMAP_QUERY, no PAGEMAP_SCAN, no userfaultfd WP_ASYNC) booted
# under qemu with this build's ferry, workloads and tests in its initramfs.
# KVM where it can run a stock kernel; the development VMs' /dev/kvm is PVM
# (kvm_pvm: it boots only PVM-enabled guest kernels, and a stock one hangs
# silently), so there qemu emulates (TCG), about ten times slower.
# The guest runs tests/vm/guest.sh: a dump and restore that must take the
# maps and pagemap paths because nothing better is there, predump.sh with
# the trackers that kernel has, soft-dirty included, the unix_diag refusal
# on a kernel that really lacks the module, then, with the module loaded,
# the tree, fd-kind and process-state tests.
#
# The kernel package is downloaded once (apt-get download) into
# $FERRY_KVM_CACHE (default /var/cache/ferry-kvm). Emulates without a usable
# /dev/kvm; skips without qemu or busybox, or when the kernel package cannot
# be downloaded; runs for the normal build only (no ASan runtime in the guest).
. "$(dirname "$0")/lib.sh"
CACHE=${FERRY_KVM_CACHE:-/var/cache/ferry-kvm}
KMEM=${FERRY_KVM_MEM:-2048}

ACCEL="-accel kvm -cpu host"
if [ ! -c /dev/kvm ] || [ -d /sys/module/kvm_pvm ]; then
	ACCEL="-accel tcg,thread=multi"
	echo "note: no KVM for a stock kernel here (/dev/kvm missing or PVM): emulating"
fi
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (make deps installs it)"
command -v busybox >/dev/null || skip "no busybox (make deps installs busybox-static)"
ldd "$FERRY" | grep -q libasan && skip "the guest runs the normal build only"

# The kernel: the 6.1 image Debian 12's linux-image-amd64 points at, and
# from the same package the one module the tests load (unix_diag: Debian
# builds CONFIG_UNIX_DIAG=m, and without it no Unix socket can be dumped;
# it depends on no other module). A cache from before modules were kept is
# filled again, so that kernel and module match; if that download fails the
# cached kernel boots without the module (guest.sh skips what needs it).
fetch_kernel() {
	rm -rf "$CACHE/x" "$CACHE/dl" && mkdir -p "$CACHE/dl"
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1/ {print $2; exit}')
	[ -n "$pkg" ] || { why="apt knows no Debian 6.1 kernel package"; return 1; }
	(cd "$CACHE/dl" && apt-get download "$pkg" >/dev/null 2>&1) || { why="cannot download $pkg"; return 1; }
	dpkg-deb -x "$CACHE"/dl/"$pkg"_*.deb "$CACHE/x" || { why="cannot unpack $pkg"; return 1; }
	cp "$CACHE"/x/boot/vmlinuz-* "$CACHE/vmlinuz.new" && mv "$CACHE/vmlinuz.new" "$CACHE/vmlinuz" ||
		{ why="no vmlinuz in $pkg"; return 1; }
	rm -rf "$CACHE/modules.new" && mkdir -p "$CACHE/modules.new"
	find "$CACHE/x/lib/modules" -name 'unix_diag.ko*' -exec cp {} "$CACHE/modules.new/" \;
	rm -rf "$CACHE/modules" && mv "$CACHE/modules.new" "$CACHE/modules"
	rm -rf "$CACHE/x" "$CACHE/dl"
}
if [ ! -e "$CACHE/vmlinuz" ] || [ ! -d "$CACHE/modules" ]; then
	why=
	fetch_kernel || [ -e "$CACHE/vmlinuz" ] || skip "$why"
	[ -n "$why" ] && echo "note: $why: the guest boots without unix_diag.ko"
	rm -rf "$CACHE/x" "$CACHE/dl"
fi

# The initramfs: busybox, ferry and the test programs with every shared
# library they load, the test scripts, and tests/vm/init as /init.
R="$T/root"
mkdir -p "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/bin" "$R/ferry/tests/tools" "$R/ferry/tests/workloads" "$R/ferry/tests/integration" \
	"$R/ferry/tests/vm"
cp "$(command -v busybox)" "$R/bin/busybox"
for app in $("$R/bin/busybox" --list); do
	[ "$app" = busybox ] || ln -sf busybox "$R/bin/$app"
done
cp "$FERRY" "$R/ferry/ferry"
cp "$TOOLS"/tools/* "$R/ferry/tests/tools/"
cp "$TOOLS"/workloads/* "$R/ferry/tests/workloads/"
here=$(cd "$(dirname "$0")/../.." && pwd)
for t in lib predump unixdiag fdkinds pstate tree cow; do
	cp "$here/tests/integration/$t.sh" "$R/ferry/tests/integration/"
done
# The module, uncompressed for busybox's insmod. For the tests guest.sh
# runs as the host does, in /ferry/bin: dash as their sh (busybox's sh runs
# its own applets whatever PATH says), procps' ps (tree.sh asks for options
# busybox's lacks) and coreutils' sleep, as the host's tests run it (a static
# busybox sleep fails to restore on 6.1: "no room to move the vdso through",
# a restore bug of its own); their libraries come below. No bash or
# script(1): the cases that need them skip.
mkdir -p "$R/ferry/modules" "$R/ferry/bin"
for m in "$CACHE"/modules/unix_diag.ko*; do
	case $m in
	*.xz) xz -dc "$m" >"$R/ferry/modules/unix_diag.ko" ;;
	*.zst) zstd -qdc "$m" >"$R/ferry/modules/unix_diag.ko" ;;
	*.ko) cp "$m" "$R/ferry/modules/" ;;
	esac
done
for b in ps dash sleep; do
	p=$(command -v $b) && cp "$p" "$R/ferry/bin/"
done
ln -s dash "$R/ferry/bin/sh"
mkdir -p "$R/ferry/scripts" && cp "$here"/scripts/copies.sh "$R/ferry/scripts/"
cp "$here"/tests/vm/guest.sh "$here"/tests/vm/fallback.sh "$R/ferry/tests/vm/"
cp "$here"/tests/vm/init "$R/init"
chmod +x "$R/init"
for b in "$R"/ferry/ferry "$R"/ferry/tests/tools/* "$R"/ferry/tests/workloads/* "$R"/ferry/bin/*; do
	ldd "$b" 2>/dev/null | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'
done | sort -u | while read -r lib; do
	mkdir -p "$R$(dirname "$lib")"
	cp -L "$lib" "$R$lib"
done
(cd "$R" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$T/initrd.gz" ||
	fail "build the initramfs"

[ -n "${FERRY_KVM_KEEP:-}" ] && cp "$T/initrd.gz" "$FERRY_KVM_KEEP"
# Boot it. The guest powers off when done; its console is our log.
# shellcheck disable=SC2086
timeout -k 10 "${FERRY_KVM_TIMEOUT:-900}" qemu-system-x86_64 $ACCEL -smp 2 -m "$KMEM" \
	-kernel "$CACHE/vmlinuz" -initrd "$T/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet" \
	-nographic -no-reboot -monitor none -serial stdio </dev/null >"$T/console" 2>&1
rc=$?
tr -d '\r' <"$T/console" | grep -v '^GUEST:' | sed 's/^/  guest| /' | tail -n 200
grep -q 'GUEST: kernel 6\.1' "$T/console" && ok "booted Debian's $(tr -d '\r' <"$T/console" | sed -n 's/.*GUEST: kernel //p')" ||
	fail "the guest did not boot Linux 6.1 (qemu exit $rc)"
grep -q 'GUEST: done' "$T/console" || fail "the guest did not finish (qemu exit $rc)"
tr -d '\r' <"$T/console" | sed -n 's/^GUEST: \(pass\|fail\|skip\) /\1 /p' >"$T/results"
[ -s "$T/results" ] || fail "no results from the guest"
# Each guest skip (a whole test, or a case inside one) counts as one here.
while read -r st name; do
	case $st in
	pass) ok "guest: $name" ;;
	skip) skip_case "guest: $name" ;;
	*) fail "guest: $name" ;;
	esac
done <"$T/results"
finish
