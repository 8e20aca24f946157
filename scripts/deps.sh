#!/bin/sh
# Install ferry's Debian build and test dependencies. Idempotent and quick
# when everything is present: apt-get runs only for what is missing.
set -eu
PKGS="build-essential pkg-config protobuf-c-compiler libprotobuf-c-dev liburing-dev
libnl-3-dev libxxhash-dev libssl-dev libzstd-dev libcmocka-dev clang libclang-rt-14-dev python3 iproute2 procps openssl
gdb qemu-system-x86 busybox-static runc"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: need root to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
