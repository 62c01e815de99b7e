#!/usr/bin/env bash
# Set up stapbuild on Debian 12, as root: the system packages, then the
# Python package (with its test extras) in ./.venv. Safe to re-run.
#
#   qemu-system-x86 busybox-static kmod cpio   pass 5 in a guest (virtme-ng)
#   gcc-12 make libc6-dev libelf1 libssl3      kbuild of out-of-tree modules
#   dpkg-dev                                   apt-get download / dpkg -x
#   openssl                                    keys for signed bundles (tests)
#   zstd                                       BTF from zstd-compressed 6.12 images
#   systemtap-sdt-dev                          <sys/sdt.h> for the USDT test program
#
# Kernel packages are not installed system-wide: stapbuild downloads and
# unpacks them into ~/.cache/stapbuild on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
	qemu-system-x86 busybox-static kmod cpio \
	gcc-12 make libc6-dev libelf1 libssl3 zlib1g \
	dpkg-dev zstd systemtap-sdt-dev ca-certificates openssl python3 python3-venv python3-pip >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
