"""Kernel page-table walks over a dump, for addresses outside the linear map.

struct page arrays live in the vmemmap, which no PT_LOAD segment maps by
virtual address, so the filter translates them through the dead kernel's
own page tables: init_top_pgt on x86_64 (4 or 5 levels, 2 MiB and 1 GiB
pages), swapper_pg_dir on arm64 (4K, 16K or 64K granule, block mappings,
52-bit physical addresses as MAX_PHYSMEM_BITS=52 says: FEAT_LPA with 64K pages
keeps address bits 51:48 in descriptor bits 15:12, FEAT_LPA2 with 4K or 16K
pages (on when the kernel runs with 52-bit virtual addresses) bits 51:50 in
9:8, as the kernel's __pte_to_phys() reads them), swapper_pg_dir on riscv64
(Sv39, Sv48 or Sv57 as the kernel chose at boot, which VMCOREINFO's VA_BITS
says: 39, 48 or 57; a PTE with any of R, W, X set is a leaf at any level, its
PPN in bits 53:10; arch/riscv/include/asm/pgtable-64.h).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

from kdumpctl_py.arch import KERNEL_TEXT_MAP, arch_for_machine
from kdumpctl_py.capture.vmcore import MissingMemory
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo
from kdumpctl_py.units import MASK64

RISCV_LEVELS = {39: 3, 48: 4, 57: 5}  # Sv39, Sv48, Sv57
RISCV_PPN = ((1 << 44) - 1) << 10  # _PAGE_PFN_MASK: bits 53:10
Walk = Callable[[int], tuple[int, int]]


class PhysicalMemory(Protocol):
    """A dump seen as physical memory: an ELF vmcore or a kdump-compressed file."""

    machine: int
    page_size: int

    @property
    def vmcoreinfo(self) -> VmcoreInfo: ...

    def read_phys(self, paddr: int, size: int) -> bytes: ...

    def read_phys_into(self, paddr: int, buf: memoryview) -> None: ...


class PageTables:
    """Translate kernel virtual addresses with the dump's page tables."""

    def __init__(self, vmcore: PhysicalMemory) -> None:
        self.vmcore = vmcore
        arch = arch_for_machine(vmcore.machine)
        setup = _SETUP.get(arch.page_tables if arch else None)
        if setup is None:
            raise KdumpError(f"no page-table walker for ELF machine {vmcore.machine}")
        self._walk: Walk = setup(self, vmcore.vmcoreinfo)

    def _setup_x86(self, info: VmcoreInfo) -> Walk:
        top = info.symbol("init_top_pgt")
        phys_base = info.number("phys_base")
        if top is None or phys_base is None:
            raise KdumpError("VMCOREINFO lacks init_top_pgt or phys_base")
        self._root = top - KERNEL_TEXT_MAP + phys_base
        self._levels = 5 if info.number("pgtable_l5_enabled") else 4
        sme = info.number("sme_mask") or 0
        self._addr_mask = 0x000FFFFFFFFFF000 & ~sme
        return self._walk_x86

    def _setup_arm64(self, info: VmcoreInfo) -> Walk:
        pgd = info.symbol("swapper_pg_dir")
        voffset = info.number("kimage_voffset")
        if pgd is None or voffset is None:
            raise KdumpError("VMCOREINFO lacks swapper_pg_dir or kimage_voffset")
        self._root = (pgd - voffset) & MASK64
        self._shift = (self.vmcore.page_size - 1).bit_length()
        t1sz = info.number("TCR_EL1_T1SZ")
        self._va_bits = 64 - t1sz if t1sz else (info.number("VA_BITS") or 48)
        stride = self._shift - 3
        self._levels = -(-(self._va_bits - self._shift) // stride)
        self._out = _arm64_output(self._shift, info.number("MAX_PHYSMEM_BITS") == 52,
                                  self._va_bits)
        return self._walk_arm64

    def _setup_riscv(self, info: VmcoreInfo) -> Walk:
        pgd = info.symbol("swapper_pg_dir")
        offset = info.number("va_kernel_pa_offset")
        va_bits = info.number("VA_BITS")
        if pgd is None or offset is None or va_bits not in RISCV_LEVELS:
            raise KdumpError("VMCOREINFO lacks swapper_pg_dir, va_kernel_pa_offset or a "
                             "VA_BITS of 39, 48 or 57")
        self._root = (pgd - offset) & MASK64  # swapper_pg_dir is in the image
        self._levels = RISCV_LEVELS[va_bits]
        return self._walk_riscv

    def _entry(self, table: int, index: int) -> int:
        (value,) = struct.unpack("<Q", self.vmcore.read_phys(table + index * 8, 8))
        return int(value)

    def translate(self, vaddr: int) -> tuple[int, int]:
        """(physical address, bytes left in the same mapping) for a kernel virtual address."""
        return self._walk(vaddr)

    def _walk_x86(self, vaddr: int) -> tuple[int, int]:
        table = self._root
        for level in range(self._levels, 0, -1):
            shift = 12 + 9 * (level - 1)
            entry = self._entry(table, (vaddr >> shift) & 0x1FF)
            if not entry & 1:
                raise MissingMemory(f"virtual address {vaddr:#x} is not mapped")
            if level in (2, 3) and entry & 0x80:  # PSE: 2 MiB or 1 GiB page
                size = 1 << shift
                base = entry & self._addr_mask & ~(size - 1)
                return base + (vaddr & (size - 1)), size - (vaddr & (size - 1))
            table = entry & self._addr_mask
        return table + (vaddr & 0xFFF), 0x1000 - (vaddr & 0xFFF)

    def _walk_arm64(self, vaddr: int) -> tuple[int, int]:
        shift, stride = self._shift, self._shift - 3
        table = self._root
        for level in range(self._levels, 0, -1):
            lshift = shift + stride * (level - 1)
            bits = min(stride, self._va_bits - lshift)
            entry = self._entry(table, (vaddr >> lshift) & ((1 << bits) - 1))
            if not entry & 1:
                raise MissingMemory(f"virtual address {vaddr:#x} is not mapped")
            if level > 1 and not entry & 2:  # block descriptor
                size = 1 << lshift
                base = self._out(entry) & ~(size - 1)
                return base + (vaddr & (size - 1)), size - (vaddr & (size - 1))
            table = self._out(entry)
        page = 1 << shift
        return table + (vaddr & (page - 1)), page - (vaddr & (page - 1))

    def _walk_riscv(self, vaddr: int) -> tuple[int, int]:
        table = self._root
        for level in range(self._levels, 0, -1):
            shift = 12 + 9 * (level - 1)
            entry = self._entry(table, (vaddr >> shift) & 0x1FF)
            if not entry & 1:  # _PAGE_PRESENT
                raise MissingMemory(f"virtual address {vaddr:#x} is not mapped")
            base = (entry & RISCV_PPN) << 2
            if entry & 0xE:  # R, W or X: a leaf (a 2 MiB, 1 GiB... page above level 1)
                size = 1 << shift
                return (base & ~(size - 1)) + (vaddr & (size - 1)), size - (vaddr & (size - 1))
            table = base
        raise MissingMemory(f"virtual address {vaddr:#x}: no leaf at the last level")

    def read(self, vaddr: int, size: int) -> bytes:
        """Read kernel virtual memory, page-table translated, across mappings."""
        out = bytearray(size)
        self.read_into(vaddr, memoryview(out))
        return bytes(out)

    def read_into(self, vaddr: int, buf: memoryview) -> None:
        """Kernel virtual memory straight into `buf` (struct pages: no copies)."""
        pos = 0
        while pos < len(buf):
            paddr, left = self.translate(vaddr + pos)
            n = min(len(buf) - pos, left)
            self.vmcore.read_phys_into(paddr, buf[pos:pos + n])
            pos += n


def _arm64_output(shift: int, pa52: bool, va_bits: int) -> Callable[[int], int]:
    """The output address of an arm64 table or block descriptor."""
    if not pa52:
        mask = ((1 << 48) - 1) & ~((1 << shift) - 1)
        return lambda entry: entry & mask
    if shift == 16:  # FEAT_LPA
        low = ((1 << 48) - 1) & ~((1 << 16) - 1)
        return lambda entry: (entry & low) | ((entry >> 12) & 0xF) << 48
    if va_bits < 52:  # no LPA2 at run time: bits 9:8 are shareability
        mask = ((1 << 48) - 1) & ~((1 << shift) - 1)
        return lambda entry: entry & mask
    low2 = ((1 << 50) - 1) & ~((1 << shift) - 1)
    return lambda entry: (entry & low2) | ((entry >> 8) & 0x3) << 50


# Each walker's setup, by Arch.page_tables.
_SETUP: dict[str | None, Callable[[PageTables, VmcoreInfo], Walk]] = {
    "x86-64": PageTables._setup_x86,
    "arm64": PageTables._setup_arm64,
    "riscv": PageTables._setup_riscv,
}
