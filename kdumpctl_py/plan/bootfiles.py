"""The one place that knows where a release's kernel image and capture initrd are in /boot.

`start` loads, and `estimate` models, the same files: kdumpctl-py's own capture
initramfs when it has been built (`kdumpctl-py initramfs build`), else the
system's own initrd for that release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

KERNEL_NAMES = ("vmlinuz-{}", "Image-{}", "bzImage-{}", "vmlinux-{}", "kernel-{}")
# kdumpctl-py's own capture initramfs, built next to the kernel.
OWN_INITRD = "kdumpctl-py-initrd-{}.img"
# The system's: initramfs-tools, dracut, others.
SYSTEM_INITRD_NAMES = ("initrd.img-{}", "initramfs-{}.img", "initrd-{}")
INITRD_NAMES = (OWN_INITRD, *SYSTEM_INITRD_NAMES)


def boot_file(files: dict[str, int], patterns: tuple[str, ...],
              release: str) -> tuple[str, int] | None:
    """The first /boot file named after `release` by one of the patterns, with its size."""
    for pattern in patterns:
        name = pattern.format(release)
        if name in files:
            return name, files[name]
    return None


def find_kernel(view: SystemView, release: str) -> tuple[str, int] | None:
    return boot_file(view.boot_files, KERNEL_NAMES, release)


def find_initrd(view: SystemView, release: str) -> tuple[str, int] | None:
    """Our capture initramfs if built, else the system's initrd: what `start` loads."""
    return boot_file(view.boot_files, INITRD_NAMES, release)


def system_initrd(view: SystemView, release: str) -> tuple[str, int] | None:
    return boot_file(view.boot_files, SYSTEM_INITRD_NAMES, release)


def own_initrd_path(release: str) -> str:
    from kdumpctl_py.errors import UsageError

    if not release or "/" in release or release.startswith("."):
        raise UsageError(f"{release!r} is not a kernel release")
    return "/boot/" + OWN_INITRD.format(release)
