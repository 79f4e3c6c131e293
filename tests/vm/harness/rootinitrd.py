"""A busybox initramfs that mounts a Debian root from the virtio disk, then hands on.

The systemd cycle's first kernel switches to the root's systemd with it; a foreign
root's first boot (firstboot.py) runs update-initramfs in the root with it.
"""

from __future__ import annotations

from pathlib import Path

from . import guestroot, initramfs
from .config import Arch
from .guestroot import Entry, Tree

# Mounts /dev/vda (MOUNT_OPTIONS) on /root; what follows is the caller's.
PROLOGUE = """\
#!/bin/busybox sh
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev /root
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
for m in @MODULES@; do $bb insmod "$m" || echo "insmod $m failed"; done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 100 ]; do $bb sleep 0.1; n=$((n + 1)); done
"""


def write(arch: Arch, kernel_dir: Path, release: str, busybox_dir: Path, then: str,
          path: Path, extra_modules: tuple[str, ...] = (), xz: bool = False) -> None:
    """busybox, the virtio modules (from `kernel_dir`, a kernel package or a root) and
    an /init that loads them, waits for /dev/vda and runs `then`."""
    tree = Tree()
    tree.add_package(busybox_dir)
    modules, _builtin = guestroot.kernel_modules(kernel_dir, release,
                                                 arch.virtio_modules + extra_modules)
    for _name, guest_path, data in modules:
        tree.add(guest_path, Entry("file", perm=0o644, data=data))
    init = PROLOGUE.replace("@MODULES@", " ".join("/" + p for _, p, _ in modules)) + then
    tree.add("init", Entry("file", perm=0o755, data=init.encode()))
    tree.add_skeleton()
    initramfs.write_archive(tree, path, xz=xz)
