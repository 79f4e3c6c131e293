#!/bin/sh
# Set up everything kdumpctl-py and its tests need on Debian 12 or 13, as root:
# the system packages (QEMU and Debian's UEFI firmware for it, the tools that build
# a GPT disk image without mounting it, the Debian reference tools, the arm64 and
# riscv64 cross compilers and static C libraries kernel/build uses for the kernels
# and their kselftest), a virtual environment
# in .venv with kdumpctl-py and its extras, and /usr/local/bin/kdumpctl-py.
set -eu
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    python3 python3-venv python3-dev gcc libc6-dev pkg-config libsystemd-dev liblzo2-dev \
    qemu-system-x86 qemu-system-arm qemu-system-misc qemu-utils qemu-user-static \
    busybox-static cpio e2fsprogs zstd xz-utils dpkg-dev ca-certificates \
    device-tree-compiler makedumpfile crash gdb mandoc systemd binutils-aarch64-linux-gnu \
    mmdebstrap proot ovmf qemu-efi-aarch64 openssh-client openssh-server nfs-ganesha nfs-ganesha-vfs \
    grub-common dosfstools mtools fdisk \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-riscv64-linux-gnu libc6-dev-riscv64-cross \
    make flex bison bc patch \
    perl libssl-dev \
    libelf-dev

# Debian's own interpreter, so the venv matches what the distribution runs.
/usr/bin/python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[analyse,systemd,lzo,test]'
ln -sf "$PWD/.venv/bin/kdumpctl-py" /usr/local/bin/kdumpctl-py
echo "set up: $(/usr/local/bin/kdumpctl-py --version)"
