"""What differs between the architectures kdumpctl-py knows, in one table.

Numbers come from the kernel: syscall tables (arch/*/syscalls, asm-generic
unistd.h), ELF machine numbers (include/uapi/linux/elf-em.h) and
kernel/crash_reserve.c with each arch's asm/crash_reserve.h.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kdumpctl_py.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40


@dataclass(frozen=True)
class Arch:
    name: str  # as uname(2) spells it
    aliases: tuple[str, ...]
    elf_machine: int
    kexec_load_nr: int
    kexec_file_load_nr: int
    # crashkernel=: whether ",high"/",low" are understood, and the low size
    # reserved beside a high region when ",low" is not given.
    crash_high_low: bool
    default_low_size: int | None

    @property
    def kexec_arch(self) -> int:
        """The KEXEC_ARCH_* value kexec_load wants in its flags (ELF machine << 16)."""
        return self.elf_machine << 16


ARCHES: tuple[Arch, ...] = (
    # x86: low size is max(swiotlb + 8 MiB, 256 MiB); swiotlb defaults to 64 MiB.
    Arch("x86_64", ("amd64", "x86-64"), 62, 246, 320, True, 256 * MiB),
    Arch("aarch64", ("arm64",), 183, 104, 294, True, 128 * MiB),
    Arch("riscv64", ("riscv",), 243, 104, 294, True, 128 * MiB),
    Arch("ppc64le", ("ppc64el", "powerpc64le"), 21, 268, 382, False, None),
    Arch("s390x", ("s390",), 22, 277, 381, False, None),
)

# Every name an architecture may be given by: uname's and Debian's (amd64, arm64).
ARCH_NAMES: tuple[str, ...] = tuple(n for a in ARCHES for n in (a.name, *a.aliases))
ARCH_HELP = ", ".join(f"{a.name} ({'/'.join(a.aliases)})" for a in ARCHES)


def get_arch(name: str | None = None) -> Arch:
    """Look an architecture up by uname name or Debian alias; None means the running one."""
    wanted = (name or os.uname().machine).lower()
    for arch in ARCHES:
        if wanted == arch.name or wanted in arch.aliases:
            return arch
    known = ", ".join(a.name for a in ARCHES)
    raise UsageError(f"unknown architecture {wanted!r} (known: {known})")
