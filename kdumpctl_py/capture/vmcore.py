"""An ELF vmcore (/proc/vmcore or a saved file), read by address.

Physical reads go through the PT_LOAD segments (p_paddr -> file offset);
virtual reads through the segments' p_vaddr, which cover the linear map and
the kernel image, which is where every structure kdumpctl-py reads without
debug info lives (the printk ring buffer, mem_section roots). Addresses no
segment covers raise `MissingMemory`, never return made-up bytes.

Page data is read with pread: a page that cannot be read fails with one of
UNREADABLE_ERRNOS, which the saver handles page by page, where a read through a
mapping of a regular file on a failing disk would SIGBUS. Struct pages, which
the filter reads by the megabyte (a GiB of them per 64 GiB of RAM), are read
through a read-only mapping instead (`phys_view`), as makedumpfile reads
everything, without a copy: /proc/vmcore's mmap (fs/proc/vmcore.c, mmap_vmcore)
maps the old memory when mmap() is called, a pfn the kernel says is not RAM as
the zero page (what a read of it returns too), so touching the mapping cannot
fault (struct pages are the old kernel's own allocations, never RAM that
firmware withholds, which only pread may touch), and a regular file is mapped
only within its size. Where mmap is refused (a kernel without mmap_vmcore, a
file system without mmap, a file that is not a regular file) the same bytes are
read with pread.
"""

from __future__ import annotations

import bisect
import errno
import mmap
import os
import stat
from typing import TYPE_CHECKING, NamedTuple

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.elfcore import ElfCore, Segment, parse_elf_core
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo
from kdumpctl_py.units import MASK64

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

PAGE = mmap.ALLOCATIONGRANULARITY  # what a mapping's offset is a multiple of


# What a read of /proc/vmcore gives for old memory the capture kernel cannot copy:
# fs/proc/vmcore.c's read_from_oldmem answers -EFAULT when copy_oldmem_page copies
# less than asked (riscv64: RAM that M-mode firmware keeps behind PMP, such as
# OpenSBI's at the start of RAM when a segment covers it), and a read of a saved
# file on a failing disk, or an arch's copy_oldmem_page, gives EIO. Our buffers are
# Python's own, so EFAULT never means a bad user buffer here.
UNREADABLE_ERRNOS = frozenset({errno.EIO, errno.EFAULT})


def firmware_memory_of(view: SystemView) -> tuple[tuple[int, int], ...]:
    """RAM that firmware keeps from this machine's kernels, from its device tree's
    /reserved-memory (riscv64: OpenSBI's), for SaveOptions.firmware; none elsewhere.

    Asked before every save in the capture kernel, so it never raises: an architecture
    this project does not know, a tree or a libfdt that cannot be read withhold nothing
    we can name (an unreadable page there then leaves the dump incomplete, as before)."""
    try:
        if not view.arch.firmware_in_dt or view.fdt is None:
            return ()
        from kdumpctl_py.plan.dtb import firmware_memory

        return tuple(firmware_memory(view.fdt, "/sys/firmware/fdt"))
    except (KdumpError, ImportError, OSError):
        return ()


class MissingMemory(KdumpError):
    """The dump does not hold the address asked for (filtered out, or never dumped)."""


class _Span(NamedTuple):
    """Addresses start..end of one segment, and where they are in the file."""

    start: int
    end: int  # exclusive
    offset: int  # file offset of start, or -1 past p_filesz (reads as zeros)


def _spans(segments: list[Segment], key: str) -> tuple[list[int], list[_Span]]:
    spans = []
    for s in segments:
        base = getattr(s, key)
        if base == MASK64:
            continue
        spans.append(_Span(base, base + s.filesz, s.offset))
        if s.memsz > s.filesz:
            spans.append(_Span(base + s.filesz, base + s.memsz, -1))
    # The kernel-text segment repeats part of a RAM segment physically, inside it or
    # straddling two: trim each span to what the ones before it leave, so that every
    # address has exactly one span (and every page is written once).
    spans.sort(key=lambda sp: (sp.start, -sp.end))
    kept: list[_Span] = []
    for sp in spans:
        if kept and sp.start < kept[-1].end:
            if sp.end <= kept[-1].end:
                continue
            cut = kept[-1].end - sp.start
            sp = _Span(kept[-1].end, sp.end, sp.offset + cut if sp.offset >= 0 else -1)
        kept.append(sp)
    return [sp.start for sp in kept], kept


class Vmcore:
    def __init__(self, path: str, partial: bool = False) -> None:
        """Open `path`; with `partial`, a file cut short is accepted and its missing
        tail reads as MissingMemory (the saver lists those pages), not refused."""
        self.path = path
        try:
            self._file = open(path, "rb")
        except OSError as e:
            raise UsageError(f"cannot open {path}: {e.strerror}") from None
        self.core: ElfCore = parse_elf_core(self._file, path)
        st = os.fstat(self._file.fileno())
        self.size = st.st_size
        loads = self.core.loads
        for s in loads:
            if s.offset + s.filesz > self.size and not partial:
                raise UsageError(f"{path} is truncated: a segment ends at {s.offset + s.filesz} "
                                 f"but the file has {self.size} bytes")
        self._phys_keys, self._phys = _spans(loads, "paddr")
        self._virt_keys, self._virt = _spans(loads, "vaddr")
        info = self.core.vmcoreinfo
        if info is None:
            raise UsageError(f"{path} has no VMCOREINFO note; it is not a Linux vmcore")
        self.vmcoreinfo: VmcoreInfo = info
        self.page_size = info.page_size or 4096
        self.machine = self.core.machine
        self._mappable = stat.S_ISREG(st.st_mode)

    def close(self) -> None:
        self._file.close()

    def pread(self, size: int, offset: int) -> bytes:
        """Bytes of the file itself; short only at end of file."""
        return os.pread(self._file.fileno(), size, offset)

    def pread_into(self, buf: memoryview, offset: int) -> int:
        """Bytes of the file straight into `buf`; fewer only at end of file."""
        return os.preadv(self._file.fileno(), [buf], offset)

    def __enter__(self) -> Vmcore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, keys: list[int], spans: list[_Span], addr: int, size: int, kind: str) -> bytes:
        out = bytearray(size)
        self._read_into(keys, spans, addr, memoryview(out), kind)
        return bytes(out)

    def _read_into(self, keys: list[int], spans: list[_Span], addr: int, buf: memoryview,
                   kind: str) -> None:
        pos = 0
        while pos < len(buf):
            i = bisect.bisect_right(keys, addr) - 1
            if i < 0 or addr >= spans[i].end:
                raise MissingMemory(f"{kind} address {addr:#x} is not in {self.path}")
            sp = spans[i]
            n = min(len(buf) - pos, sp.end - addr)
            if sp.offset < 0:
                buf[pos:pos + n] = bytes(n)
            elif os.preadv(self._file.fileno(), [buf[pos:pos + n]],
                           sp.offset + addr - sp.start) < n:
                raise MissingMemory(f"{self.path} ends inside {kind} address {addr:#x}")
            addr += n
            pos += n

    def read_phys_into(self, paddr: int, buf: memoryview) -> None:
        """Physical memory straight into `buf`, without a copy."""
        self._read_into(self._phys_keys, self._phys, paddr, buf, "physical")

    def read_phys(self, paddr: int, size: int) -> bytes:
        return self._read(self._phys_keys, self._phys, paddr, size, "physical")

    def read_virt(self, vaddr: int, size: int) -> bytes:
        return self._read(self._virt_keys, self._virt, vaddr, size, "virtual")

    def read_u64(self, vaddr: int) -> int:
        return int.from_bytes(self.read_virt(vaddr, 8), "little")

    def read_u32(self, vaddr: int) -> int:
        return int.from_bytes(self.read_virt(vaddr, 4), "little")

    def read_phys_filled(self, paddr: int, size: int) -> bytes:
        """Physical memory with what no segment holds read as zeros, for a page that a
        PT_LOAD starts or ends inside (makedumpfile's readpage_elf): never shifted."""
        out = bytearray(size)
        end = paddr + size
        i = max(bisect.bisect_right(self._phys_keys, paddr) - 1, 0)
        for sp in self._phys[i:]:
            if sp.start >= end:
                break
            lo, hi = max(sp.start, paddr), min(sp.end, end)
            if lo >= hi or sp.offset < 0:
                continue
            data = self.pread(hi - lo, sp.offset + lo - sp.start)
            if len(data) < hi - lo:
                raise MissingMemory(f"{self.path} ends inside physical address {lo:#x}")
            out[lo - paddr:hi - paddr] = data
        return bytes(out)

    def phys_view(self, paddr: int, size: int) -> memoryview | None:
        """`size` bytes of physical memory as a read-only view of the file mapped in memory,
        without a copy; None where they are not one segment's file data inside the file's
        whole pages, or mmap was refused (pread from then on, as makedumpfile does). The
        mapping is the view's own, unmapped when the view goes."""
        i = bisect.bisect_right(self._phys_keys, paddr) - 1
        if not self._mappable or i < 0:
            return None
        sp = self._phys[i]
        lo = sp.offset + paddr - sp.start
        # /proc/vmcore refuses a mapping past its last whole page; a regular file SIGBUSes
        if sp.offset < 0 or paddr + size > sp.end or lo + size > self.size - self.size % PAGE:
            return None
        start = lo - lo % PAGE
        try:
            mapped = mmap.mmap(self._file.fileno(), lo + size - start, flags=mmap.MAP_PRIVATE,
                               prot=mmap.PROT_READ, offset=start)
        except (OSError, ValueError):
            self._mappable = False
            return None
        return memoryview(mapped)[lo - start:]

    def phys_ranges(self) -> list[tuple[int, int, int]]:
        """(paddr, size, file offset) of each PT_LOAD with file data, by address."""
        return [(sp.start, sp.end - sp.start, sp.offset) for sp in self._phys if sp.offset >= 0]
