"""Kernels from a Debian suite other than the guest's userland (--kernel-suite).

kdumpctl-py needs Python 3.11, which bullseye lacks: its 5.10 kernel boots with
bookworm's userland. The newest kernels come from a backports suite, whose apt
state names only that suite. From Linux 7.x Debian splits a kernel into
linux-image-REL (a metapackage), linux-binary-REL (the image, as
/usr/lib/modules/REL/vmlinuz), linux-modules-REL and linux-base-REL
(modules.builtin); the guest gets them merged into one tree with
/boot/vmlinuz-REL, as the packages' hooks would install it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .aptsources import Mirrors
from .cache import building_dir
from .config import Arch
from .debian import AptState, Kernel, Package, extract
from .errors import HarnessError
from .proc import run


@dataclass(frozen=True)
class KernelSuite:
    """Where a kernel comes from, which userland boots it, which tools read its dumps."""

    name: str  # the --kernel-suite spelling, also the private apt state's name
    userland: str  # the --suite whose packages make the guest
    # The suite whose makedumpfile and crash are the oracles for this kernel's dumps.
    tools: str
    # apt suites on the main archive; empty: the suite itself, -updates and -security.
    suites: tuple[str, ...] = ()

    def sources(self, mirrors: Mirrors) -> str | None:
        if not self.suites:
            return None
        return (f"Types: deb\nURIs: {mirrors.archive}\nSuites: {' '.join(self.suites)}\n"
                f"Components: main\nSigned-By: {mirrors.archive_signed_by}\n")


KERNEL_SUITES: dict[str, KernelSuite] = {
    # bullseye-security's kernels have no -dbg package on the archive (404): the
    # point release's kernel is the newest 5.10 with debug info.
    "bullseye": KernelSuite("bullseye", userland="bookworm", tools="bullseye",
                            suites=("bullseye", "bullseye-updates")),
    "bookworm": KernelSuite("bookworm", userland="bookworm", tools="bookworm"),
    "trixie": KernelSuite("trixie", userland="trixie", tools="trixie"),
    # The newest kernel Debian ships (7.3 on 2026-12-01: newer than sid's 7.2).
    # Backports have no makedumpfile or crash of their own: trixie's are the
    # same suite's (see tests/vm/README.md for what they cannot read).
    "trixie-backports": KernelSuite("trixie-backports", userland="trixie", tools="trixie",
                                    suites=("trixie-backports",)),
}


def apt_state(cache: Path, suite: str, arch: Arch, mirrors: Mirrors) -> AptState:
    """The private apt state of a kernel or tools suite (the userland's when they agree)."""
    ks = KERNEL_SUITES.get(suite)
    return AptState(cache, suite, arch, mirrors, ks.sources(mirrors) if ks else None)


def kernel_parts(apt: AptState, kernel: Kernel) -> list[Package]:
    """The image package and, for split kernels, its linux-binary, -modules and -base."""
    parts = [kernel.image]
    deps = apt.depends(kernel.image.name)
    for name in sorted(set(re.findall(r"\b(linux-(?:base|binary|modules)-[^\s,(|]+)", deps))):
        if not name.endswith(kernel.release):
            continue
        pkg = apt.candidate(name)
        if pkg is not None:
            parts.append(pkg)
    return parts


def boot_image(kernel_dir: Path, release: str) -> Path:
    """The bootable image as the package installs it: /boot/vmlinuz-REL, or on riscv64
    /boot/vmlinux-REL (an uncompressed EFI-stub Image, despite its name)."""
    for name in (f"vmlinuz-{release}", f"vmlinux-{release}"):
        if (kernel_dir / "boot" / name).exists():
            return kernel_dir / "boot" / name
    raise HarnessError(f"no /boot/vmlinuz-{release} or vmlinux-{release} in {kernel_dir}")


def kernel_tree(cache: Path, kernel: Kernel, debs: dict[Package, Path]) -> Path:
    """One unpacked tree of the kernel's packages (/boot and lib/modules together)."""
    parts = sorted(debs)
    if len(parts) == 1:
        return extract(debs[parts[0]], parts[0], cache)
    final = (cache / "pkgs" / kernel.image.arch
             / (kernel.image.deb_name.removesuffix(".deb") + "+parts"))
    if final.exists():
        return final
    with building_dir(final) as tmp:
        for p in parts:
            run(["dpkg-deb", "-x", debs[p], tmp])
        boot = tmp / "boot" / f"vmlinuz-{kernel.release}"
        if not boot.exists():
            boot.parent.mkdir(exist_ok=True)
            boot.symlink_to(f"../usr/lib/modules/{kernel.release}/vmlinuz")
    return final
