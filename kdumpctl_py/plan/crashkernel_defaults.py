"""The crashkernel= value to write when the admin gives none, per architecture and page size.

x86_64, arm64 (4K pages) and riscv64 up to 4 GiB of RAM: the smallest reservation
with which the QEMU crash cycle saves a dump at -d 31 (tests/vm/test_capture_memory.py,
Debian 12 cloud kernels, 1 GiB guests, the harness's lean capture initramfs:
x86_64 144M, arm64 112M; riscv64 192M in 32M steps, Debian 13's kernel, Sv57 and
Sv39, tests/vm/README.md) plus a margin of 48M for what a real machine has and
the guest has not (more drivers probing devices, firmware tables, a larger
initramfs). riscv64 needs more than arm64 because every boot of its kernel
allocates 32 MiB of mem_section roots (MAX_PHYSMEM_BITS 56); above 4 GiB it takes
arm64's rows, as Fedora ships none for it. Larger machines and other
architectures keep Fedora's kdump-utils values (kdump_get_arch_recommend_crashkernel,
2025), tested on its kernels with its dracut initramfs, until the crash cycle
measures them. `estimate` models one
machine; change a row only with a measurement from the crash cycle, and say
which run it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kdumpctl_py.arch import Arch
from kdumpctl_py.errors import UsageError
from kdumpctl_py.plan.crashkernel import CMA_SUFFIX, RangeRule, format_ranges, parse_size
from kdumpctl_py.units import GiB as G
from kdumpctl_py.units import MiB as M

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.plan.bootloader import FileEdit

PAGE_4K = 4 << 10
PAGE_64K = 64 << 10

# Measured minimum plus this, for 1-4 GiB machines (module docstring).
MARGIN = 48 * M
# Fedora: x86_64 and s390x, since fe18f93 (2025; erofs initrds and NFS dumps needed 238M).
_GENERIC: tuple[RangeRule, ...] = ((2 * G, 64 * G, 256 * M), (64 * G, None, 512 * M))
_X86_64: tuple[RangeRule, ...] = (
    (1 * G, 4 * G, 144 * M + MARGIN), (4 * G, 64 * G, 256 * M), (64 * G, None, 512 * M))
# Fedora's above 4 GiB: aarch64 4K pages; 64K-page kernels add 100M to each size.
_ARM64_4K: tuple[RangeRule, ...] = (
    (1 * G, 4 * G, 112 * M + MARGIN), (4 * G, 64 * G, 320 * M), (64 * G, None, 576 * M))
# Fedora has no riscv64 value: arm64's above 4 GiB.
_RISCV64: tuple[RangeRule, ...] = ((1 * G, 4 * G, 192 * M + MARGIN), *_ARM64_4K[1:])
# Fedora: ppc64le kdump (not fadump), plus 1M for each of the capture kernel's 16 CPUs.
_PPC64LE: tuple[RangeRule, ...] = tuple(
    (start, end, size + 16 * M) for start, end, size in (
        (2 * G, 4 * G, 384 * M), (4 * G, 16 * G, 512 * M), (16 * G, 64 * G, 1 * G),
        (64 * G, 128 * G, 2 * G), (128 * G, None, 4 * G)))

DEFAULTS: dict[tuple[str, int], tuple[RangeRule, ...]] = {
    ("x86_64", PAGE_4K): _X86_64,
    ("s390x", PAGE_4K): _GENERIC,
    ("riscv64", PAGE_4K): _RISCV64,
    ("aarch64", PAGE_4K): _ARM64_4K,
    ("aarch64", PAGE_64K): tuple((s, e, size + 100 * M) for s, e, size in _ARM64_4K),
    ("ppc64le", PAGE_4K): _PPC64LE,
    ("ppc64le", PAGE_64K): _PPC64LE,
}


def default_crashkernel(arch: Arch, page_size: int = PAGE_4K) -> str:
    """The default crashkernel= value for an architecture and base page size.

    Pages smaller than 64K (arm64's 16K) get the 4K row, as on Fedora.
    """
    row = PAGE_64K if page_size >= PAGE_64K else PAGE_4K
    rules = DEFAULTS.get((arch.name, row))
    if rules is None:
        raise UsageError(f"{arch.name} kernels have no {page_size >> 10}K pages")
    return format_ranges(rules)


def parse_page_size(text: str) -> int:
    """--page-size: 4K or 64K."""
    size = parse_size(text, "page size")
    if size not in (PAGE_4K, PAGE_64K):
        raise UsageError(f"page size {text!r} is not 4K or 64K")
    return size


def config_page_size(config: dict[str, str]) -> int:
    """The base page size a kernel configuration selects."""
    for key, size in (("CONFIG_ARM64_64K_PAGES", PAGE_64K), ("CONFIG_PPC_64K_PAGES", PAGE_64K),
                      ("CONFIG_ARM64_16K_PAGES", 16 << 10)):
        if config.get(key) == "y":
            return size
    return PAGE_4K


def page_size(view: SystemView) -> int:
    """The running kernel's base page size: its config, then VMCOREINFO, then its name."""
    config = view.kernel_config or {}
    if config:
        return config_page_size(config)
    info = view.vmcoreinfo
    if info is not None and info.page_size:
        return info.page_size
    return PAGE_64K if "64k" in view.uname.release.lower() else PAGE_4K


# What kdumpctl-py wrote as its default before the rows above: a value in force that is
# one of these is still the default, not the admin's choice (reset-crashkernel --auto).
_FORMER: dict[tuple[str, int], tuple[tuple[RangeRule, ...], ...]] = {
    ("x86_64", PAGE_4K): (_GENERIC,),
    ("riscv64", PAGE_4K): (_GENERIC,),
    ("aarch64", PAGE_4K): (
        ((2 * G, 4 * G, 256 * M), (4 * G, 64 * G, 320 * M), (64 * G, None, 576 * M)),
        ((1 * G, 4 * G, 176 * M), (4 * G, 64 * G, 320 * M), (64 * G, None, 576 * M))),
}
_FORMER[("aarch64", PAGE_64K)] = tuple(tuple((s, e, size + 100 * M) for s, e, size in rules)
                                       for rules in _FORMER[("aarch64", PAGE_4K)])


def is_default(value: str, arch: Arch, page_size: int = PAGE_4K) -> bool:
    """Whether crashkernel=value is kdumpctl-py's default for this arch and page size, today's
    or a former one."""
    row = PAGE_64K if page_size >= PAGE_64K else PAGE_4K
    try:
        today = default_crashkernel(arch, page_size)
    except UsageError:
        return False
    return value == today or value in {format_ranges(r) for r in _FORMER.get((arch.name, row), ())}


# A crashkernel= word of a command line in any boot loader file, quoted or not.
_WORD = re.compile(r"(?<![\w.])crashkernel=([^\s\"']+)")


def admins_own(edits: Iterable[FileEdit], arch: Arch) -> tuple[str, str] | None:
    """(file, value) of a crashkernel= the edits would replace that is no default of
    kdumpctl-py's, for either page size: --auto judges what is in force by /proc/cmdline,
    and an admin may have set their own since that boot (found by review: a kernel update
    overwrote it)."""
    for edit in edits:
        for value in _WORD.findall(edit.old.decode(errors="replace")):
            if not value.endswith(CMA_SUFFIX) and not any(
                    is_default(value, arch, page) for page in (PAGE_4K, PAGE_64K)):
                return str(edit.path), value
    return None


def auto_reset(in_force: list[str], arch: Arch, running_page: int, new_page: int) -> str | None:
    """The crashkernel= value for a newly installed kernel, as Fedora's auto_reset_crashkernel:
    the default for its page size when the running kernel's value is a default; None (leave
    it) when none is in force or it is the admin's own."""
    if len(in_force) != 1 or not is_default(in_force[0], arch, running_page):
        return None
    return default_crashkernel(arch, new_page)
