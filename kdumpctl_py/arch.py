"""What differs between the architectures kdumpctl-py knows, in one table.

As drgn's platform tables: every per-architecture fact is a field here, and the
code that differs (walking page tables, finding the kernel image) is chosen by
a field, never by testing the architecture's name. Numbers come from the
kernel: syscall tables (arch/*/syscalls, asm-generic unistd.h), ELF machine
numbers (include/uapi/linux/elf-em.h), kernel/crash_reserve.c with each arch's
asm/crash_reserve.h, and the files named beside each field.
"""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

from kdumpctl_py.errors import UsageError
from kdumpctl_py.units import GiB, MiB

# x86_64's __START_KERNEL_map, where /proc/kcore's kernel-text segment (KCORE_TEXT)
# starts; riscv64's KERNEL_LINK_ADDR is the same address.
KERNEL_TEXT_MAP = 0xFFFFFFFF80000000

# What every capture kernel is given (Fedora's kdump sysconfig, Debian's kdump-tools),
# and noresume: neither the kernel, the initramfs nor systemd may resume a hibernation
# image into the memory being saved.
CAPTURE_OPTIONS = ("reset_devices", "nr_cpus=1", "cgroup_disable=memory",
                   "udev.children-max=2", "panic=10", "novmcoredd", "cma=0", "hugetlb_cma=0",
                   "kfence.sample_interval=0", "noresume")


class Arch(NamedTuple):
    """What kdumpctl-py needs to know of one architecture: its numbers, crashkernel=
    rules, capture options, and how its images are loaded and its dumps read."""

    name: str  # as uname(2) spells it
    aliases: tuple[str, ...]
    elf_machine: int
    kexec_load_nr: int
    kexec_file_load_nr: int
    # crashkernel=: whether ",high"/",low" are understood, and the low size
    # reserved beside a high region when ",low" is not given.
    crash_high_low: bool
    default_low_size: int | None
    # x86: the low size is at least swiotlb plus this (arch/x86/include/asm/crash_reserve.h).
    low_size_over_swiotlb: int | None = None
    # The first release whose crashkernel= has ",high"/",low" here (arm64: 5.19).
    crash_high_low_since: tuple[int, int] = (0, 0)
    # KEXEC_CRASH_MEM_ALIGN, what kernel/kexec_core.c rounds a new kexec_crash_size up
    # to: PAGE_SIZE (None), except s390 (arch/s390/include/asm/kexec.h: HPAGE_SIZE).
    crash_mem_align: int | None = None
    # CRASH_ALIGN (asm/crash_reserve.h): a crashkernel=size@offset base not a multiple
    # of it reserves nothing (memblock_phys_alloc_range() in [offset, offset + size)).
    # None: not checked here. Before `older_fixed_align`'s release, its alignment
    # (x86 before 6.7's reserve_crashkernel_generic(): SZ_1M).
    crash_align: int | None = None
    older_fixed_align: tuple[tuple[int, int], int] | None = None
    # The capture kernel's command line: what is added to the running kernel's.
    capture_options: tuple[str, ...] = CAPTURE_OPTIONS
    # The elfcorehdr. Where the kernel image's PT_LOAD comes from: /proc/kcore's
    # KCORE_TEXT segment, or /proc/iomem's Kernel code/data with VMCOREINFO's
    # kimage_voffset (arm64 has no usable KCORE_TEXT); None: no such PT_LOAD.
    kernel_image: Literal["kcore-text", "iomem"] | None = None
    # How VMCOREINFO gives the linear map when /proc/kcore has no RAM segments:
    # PAGE_OFFSET - phys_base (riscv64), or -(1 << VA_BITS) - phys_base (arm64).
    linear_map: Literal["page-offset", "va-bits"] | None = None
    phys_base_name: str = "phys_base"  # VMCOREINFO's name for where RAM starts
    # sizeof(note_buf_t) when sysfs lacks crash_notes_size (before 4.x): two note
    # headers, "CORE" padded to 8, and elf_prstatus.
    note_buf_size: int = 1024
    low_reserved: int = 0  # bytes at 0 the kernel always keeps for itself
    memblock_ram: bool = True  # RAM as memblock has it: /proc/iomem's seams merged
    # The top-level /proc/iomem name of memblock memory marked nomap (arm64's
    # request_standard_resources: "reserved"), which memblock's total counts as RAM.
    iomem_nomap: str | None = None
    firmware_in_dt: bool = False  # firmware memory to leave out: the DT's /reserved-memory
    # Loading. The image kexec_file_load boots, as KernelImage.format and as people
    # know it (None: not checked here).
    file_image: tuple[str, str] | None = None
    # kexec_load with segments built here: the Image format, and how it is placed.
    classic_image: str | None = None
    at_text_offset: bool = False  # the kernel sits text_offset above a 2 MiB boundary
    image_2m_end: bool = False  # the image is reserved up to the next 2 MiB boundary
    initrd_window: int | None = None  # the initrd lies below round_down(kernel, 1G) + this
    purgatory: bool = False  # entered through a purgatory that hands over the DTB
    # The dump: how its kernel page tables are walked (capture/pagetables.py), and
    # where a PRSTATUS note's pr_reg (elf_gregset_t, 8-byte words) keeps pc and sp:
    # (word of pc, word of sp, words in pr_reg).
    page_tables: Literal["x86-64", "arm64", "riscv"] | None = None
    prstatus_regs: tuple[int, int, int] | None = None

    @property
    def kexec_arch(self) -> int:
        """The KEXEC_ARCH_* value kexec_load wants in its flags (ELF machine << 16)."""
        return self.elf_machine << 16


ARCHES: tuple[Arch, ...] = (
    # x86: low size is max(swiotlb + 8 MiB, 256 MiB); swiotlb defaults to 64 MiB.
    Arch("x86_64", ("amd64", "x86-64"), 62, 246, 320, True, 256 * MiB,
         low_size_over_swiotlb=8 * MiB, crash_align=16 * MiB,
         older_fixed_align=((6, 7), 1 * MiB),
         capture_options=("irqpoll", *CAPTURE_OPTIONS, "mce=off", "numa=off",
                          "acpi_no_memhotplug", "transparent_hugepage=never", "nokaslr",
                          "hest_disable", "pcie_ports=compat"),
         kernel_image="kcore-text", note_buf_size=12 + 8 + 336 + 12,
         low_reserved=1 * MiB, memblock_ram=False,
         file_image=("x86-bzimage", "bzImage (/boot/vmlinuz-*)"), page_tables="x86-64",
         prstatus_regs=(16, 19, 27)),
    Arch("aarch64", ("arm64",), 183, 104, 294, True, 128 * MiB,
         crash_high_low_since=(5, 19), iomem_nomap="reserved", crash_align=2 * MiB,
         capture_options=("irqpoll", *CAPTURE_OPTIONS, "swiotlb=noforce"),
         kernel_image="iomem", linear_map="va-bits", phys_base_name="PHYS_OFFSET",
         note_buf_size=12 + 8 + 392 + 12, classic_image="arm64-image", at_text_offset=True,
         initrd_window=32 * GiB, purgatory=True, page_tables="arm64",
         prstatus_regs=(32, 31, 34)),
    Arch("riscv64", ("riscv",), 243, 104, 294, True, 128 * MiB, crash_align=2 * MiB,
         kernel_image="kcore-text", linear_map="page-offset", phys_base_name="phys_ram_base",
         firmware_in_dt=True, classic_image="riscv-image", image_2m_end=True,
         page_tables="riscv", prstatus_regs=(0, 2, 32)),
    Arch("ppc64le", ("ppc64el", "powerpc64le"), 21, 268, 382, False, None),
    Arch("s390x", ("s390",), 22, 277, 381, False, None, crash_mem_align=1 * MiB),
)

# Every name an architecture may be given by: uname's and Debian's (amd64, arm64).
ARCH_NAMES: tuple[str, ...] = tuple(n for a in ARCHES for n in (a.name, *a.aliases))
# The ELF machine of each name, as a dump's utsname.machine spells it.
ELF_MACHINES = {n: a.elf_machine for a in ARCHES for n in (a.name, *a.aliases)}


def get_arch(name: str | None = None) -> Arch:
    """Look an architecture up by uname name or Debian alias; None means the running one."""
    wanted = (name or os.uname().machine).lower()
    for arch in ARCHES:
        if wanted == arch.name or wanted in arch.aliases:
            return arch
    known = ", ".join(a.name for a in ARCHES)
    raise UsageError(f"unknown architecture {wanted!r} (known: {known})")


def arch_for_machine(machine: int) -> Arch | None:
    """The architecture of an ELF file (e_machine), None for one not in the table."""
    return next((a for a in ARCHES if a.elf_machine == machine), None)
