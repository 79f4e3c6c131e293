"""Write a filtered dump as an ELF core, for tools that read only ELF.

Laid out as makedumpfile -E lays it out (write_elf_pages_cyclic): one PT_NOTE
with the vmcore's notes, then each input PT_LOAD split where 256 or more
excluded pages follow each other; such a gap becomes the p_memsz > p_filesz
tail of the segment before it, so it reads as zeros, and shorter gaps are
written as they are. Excluded memory therefore reads as zeros, never as
missing: crash needs that for zero pages in the kernel's bss. With dump level
bit 1 the zero pages are found in a first pass and excluded too. An
incomplete dump has e_flags bit 0 set (makedumpfile's convention) and
PT_LOADs that cover only what was written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from kdumpctl_py.capture.bitmaps import PageBitmaps, true_runs
from kdumpctl_py.capture.filter import zero_pages
from kdumpctl_py.capture.sink import Sink
from kdumpctl_py.capture.vmcore import UNREADABLE_ERRNOS, Vmcore
from kdumpctl_py.elf import PF_RWX, PT_LOAD, PT_NOTE
from kdumpctl_py.facts.elfcore import EHDR, ELF_INCOMPLETE, PHDR, Segment, pack_core

if TYPE_CHECKING:  # numpy.typing takes a second to import in a TCG capture kernel
    import numpy.typing as npt

PFN_EXCLUDED = 256  # makedumpfile: shorter runs of excluded pages are written anyway


class Run(NamedTuple):
    """One output PT_LOAD: where its data starts in the input, its addresses and sizes."""

    src: int
    paddr: int
    vaddr: int
    filesz: int
    memsz: int


def _alternating(kept: Iterable[tuple[int, int]], first: int, end: int) -> Iterator[
        tuple[bool, int]]:
    """(kept or not, length) of the runs of pages first..end, from the runs of kept ones."""
    pos = first
    for a, b in kept:
        if a > pos:
            yield False, a - pos
        yield True, b - a
        pos = b
    if end > pos:
        yield False, end - pos


def plan_runs(v: Vmcore, bitmaps: PageBitmaps) -> list[Run]:
    """The output PT_LOADs, from the 2nd bitmap a window at a time."""
    ps = v.page_size
    runs: list[Run] = []
    for seg in v.core.loads:
        if seg.paddr % ps or seg.filesz % ps or seg.filesz != seg.memsz:
            if seg.filesz:  # not page-shaped: keep it whole
                runs.append(Run(seg.offset, seg.paddr, seg.vaddr, seg.filesz, seg.memsz))
            continue
        first, end = seg.paddr // ps, (seg.paddr + seg.filesz) // ps
        start, memsz, filesz, excluded = seg.paddr, 0, 0, 0
        for kept, n in _alternating(bitmaps.runs(first, end), first, end):
            if not kept:
                excluded += n
                memsz += n * ps
                continue
            if excluded >= PFN_EXCLUDED:  # a long gap closes the segment as its tail
                runs.append(Run(seg.offset + start - seg.paddr, start,
                                seg.vaddr + start - seg.paddr, filesz, memsz))
                start += memsz
                memsz = filesz = 0
            elif excluded:
                filesz += excluded * ps
            excluded = 0
            memsz += n * ps
            filesz += n * ps
        runs.append(Run(seg.offset + start - seg.paddr, start, seg.vaddr + start - seg.paddr,
                        filesz, memsz))
    return runs


class ElfWriter:
    """The headers go out first marked incomplete, covering nothing, and are rewritten
    at the end; a flattened stream (`optimistic`) has them complete from the start,
    rewritten only when the dump ends incomplete, as KdumpWriter's."""

    def __init__(self, sink: Sink, machine: int, notes: bytes, runs: list[Run],
                 optimistic: bool = False) -> None:
        self.sink, self.machine, self.notes, self.runs = sink, machine, notes, runs
        self.optimistic = optimistic
        phnum = 1 + len(runs)
        self.note_offset = EHDR.size + phnum * PHDR.size
        offset = self.note_offset + len(notes)
        self.offsets = []
        for r in runs:
            self.offsets.append(offset)
            offset += r.filesz
        self.written = [0] * len(runs)

    def _headers(self, incomplete: bool) -> bytes:
        segs = [Segment(PT_NOTE, self.note_offset, 0, 0, len(self.notes), len(self.notes))]
        for r, off, done in zip(self.runs, self.offsets, self.written, strict=True):
            filesz, memsz = (done, done) if incomplete else (r.filesz, r.memsz)
            segs.append(Segment(PT_LOAD, off if filesz else 0, r.vaddr, r.paddr, filesz, memsz,
                                PF_RWX))
        return pack_core(self.machine, segs, ELF_INCOMPLETE if incomplete else 0)

    def begin(self) -> None:
        self.sink.write_at(0, self._headers(incomplete=not self.optimistic))
        self.sink.write_at(self.note_offset, self.notes)

    def add(self, index: int, at: int, data: bytes) -> None:
        """Bytes of run `index`, starting `at` bytes into it."""
        self.sink.write_at(self.offsets[index] + at, data)
        self.written[index] = max(self.written[index], at + len(data))

    def finish(self, complete: bool) -> None:
        if not (complete and self.optimistic):
            self.sink.write_at(0, self._headers(incomplete=not complete))


def without_zero_pages(v: Vmcore, bitmaps: PageBitmaps, chunk: int) -> tuple[PageBitmaps, int]:
    """The bitmaps without the kept pages that are all zeros, and how many those were; read
    `chunk` pages at a time, a window at a time."""
    ps = v.page_size
    out = PageBitmaps(bitmaps.nr)
    zeros = 0
    for first, present, keep in bitmaps.windows():
        for seg in v.core.loads:
            lo = max(-(-seg.paddr // ps), first)
            hi = min((seg.paddr + seg.filesz) // ps, first + len(keep))
            if lo >= hi:
                continue
            for a, b in true_runs(keep[lo - first:hi - first]):
                for pfn in range(lo + a, lo + b, chunk):
                    n = min(chunk, lo + b - pfn)
                    z = _zero_pages_at(v, seg.offset + pfn * ps - seg.paddr, n)
                    keep[pfn - first:pfn - first + len(z)] &= ~z
                    zeros += int(z.sum())
        out.add(first, present, keep)
    return out, zeros


def _zero_pages_at(v: Vmcore, offset: int, count: int) -> npt.NDArray[np.bool_]:
    """Which of the `count` pages at file `offset` are all zeros, as far as they can be
    read: a page that cannot be read (EIO, EFAULT, past the end of a file cut short) is
    not, so the pass that writes meets it and lists it."""
    ps = v.page_size
    try:
        data = v.pread(count * ps, offset)
        return zero_pages(data[:len(data) // ps * ps], ps)
    except OSError as e:
        if e.errno not in UNREADABLE_ERRNOS:
            raise
    z = np.zeros(count, dtype=bool)
    for i in range(count):
        try:
            z[i] = v.pread(ps, offset + i * ps).count(0) == ps
        except OSError as e:
            if e.errno not in UNREADABLE_ERRNOS:
                raise
    return z
