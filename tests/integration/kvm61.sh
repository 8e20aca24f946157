#!/bin/sh
# The fallbacks on a real older kernel: Debian 12's own Linux 6.1 (soft-dirty
# on; no PROCMAP_QUERY, no PAGEMAP_SCAN, no userfaultfd WP_ASYNC) booted
# under qemu with this build's ferry, workloads and tests in its initramfs.
# KVM where it can run a stock kernel; the development VMs' /dev/kvm is PVM
# (kvm_pvm: it boots only PVM-enabled guest kernels, and a stock one hangs
# silently), so there qemu emulates (TCG), about ten times slower.
# The guest runs tests/vm/guest.sh: a dump and restore that must take the
# maps and pagemap paths because nothing better is there, and predump.sh
# with the trackers that kernel has, soft-dirty included.
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

# The kernel: the 6.1 image Debian 12's linux-image-amd64 points at.
if [ ! -e "$CACHE/vmlinuz" ]; then
	mkdir -p "$CACHE/dl"
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-6\.1/ {print $2; exit}')
	[ -n "$pkg" ] || skip "apt knows no Debian 6.1 kernel package"
	(cd "$CACHE/dl" && apt-get download "$pkg" >/dev/null 2>&1) || skip "cannot download $pkg"
	dpkg-deb -x "$CACHE"/dl/"$pkg"_*.deb "$CACHE/x" || fail "unpack $pkg"
	cp "$CACHE"/x/boot/vmlinuz-* "$CACHE/vmlinuz"
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
cp "$here"/tests/integration/lib.sh "$here"/tests/integration/predump.sh "$R/ferry/tests/integration/"
mkdir -p "$R/ferry/scripts" && cp "$here"/scripts/copies.sh "$R/ferry/scripts/"
cp "$here"/tests/vm/guest.sh "$here"/tests/vm/fallback.sh "$R/ferry/tests/vm/"
cp "$here"/tests/vm/init "$R/init"
chmod +x "$R/init"
for b in "$R"/ferry/ferry "$R"/ferry/tests/tools/* "$R"/ferry/tests/workloads/*; do
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
