"""Write a filtered dump as an ELF core, for tools that read only ELF.

Like makedumpfile -E: one PT_NOTE with the vmcore's notes, then for every
PT_LOAD of the input one PT_LOAD per run of kept pages inside it (the kernel
text segment repeats RAM, so its pages are written twice, as in /proc/vmcore).
ELF cannot mark a page as zero, so with dump level bit 1 the zero pages are
found in a first pass and left out. An incomplete dump has e_flags bit 0 set
(makedumpfile's convention) and PT_LOADs that cover only what was written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kdumpctl_py.capture.filter import zero_pages
from kdumpctl_py.capture.sink import Sink
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.facts.elfcore import EHDR, PHDR, Segment, pack_core

PT_LOAD, PT_NOTE, PF_RWX = 1, 4, 7
ELF_INCOMPLETE = 1


@dataclass(frozen=True)
class Run:
    """One output PT_LOAD: input file offset, physical and virtual address, size."""

    src: int
    paddr: int
    vaddr: int
    size: int


def plan_runs(v: Vmcore, keep: npt.NDArray[np.bool_]) -> list[Run]:
    ps = v.page_size
    runs: list[Run] = []
    for seg in v.core.loads:
        lo, hi = seg.paddr, seg.paddr + seg.filesz
        first, last = lo // ps, -(-hi // ps)
        sel = keep[first:min(last, len(keep))]
        idx = np.flatnonzero(sel)
        if not len(idx):
            continue
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        for part in np.split(idx, breaks):
            start = max((first + int(part[0])) * ps, lo)
            end = min((first + int(part[-1]) + 1) * ps, hi)
            runs.append(Run(seg.offset + start - lo, start, seg.vaddr + start - lo, end - start))
    return runs


class ElfWriter:
    def __init__(self, sink: Sink, machine: int, notes: bytes, runs: list[Run]) -> None:
        self.sink, self.machine, self.notes, self.runs = sink, machine, notes, runs
        phnum = 1 + len(runs)
        self.note_offset = EHDR.size + phnum * PHDR.size
        offset = self.note_offset + len(notes)
        self.offsets = []
        for r in runs:
            self.offsets.append(offset)
            offset += r.size
        self.written = [0] * len(runs)

    def _headers(self, incomplete: bool) -> bytes:
        segs = [Segment(PT_NOTE, self.note_offset, 0, 0, len(self.notes), len(self.notes))]
        for r, off, done in zip(self.runs, self.offsets, self.written, strict=True):
            size = done if incomplete else r.size
            segs.append(Segment(PT_LOAD, off, r.vaddr, r.paddr, size, size, PF_RWX))
        return pack_core(self.machine, segs, ELF_INCOMPLETE if incomplete else 0)

    def begin(self) -> None:
        self.sink.write_at(0, self._headers(incomplete=True))
        self.sink.write_at(self.note_offset, self.notes)

    def add(self, index: int, at: int, data: bytes) -> None:
        """Bytes of run `index`, starting `at` bytes into it."""
        self.sink.write_at(self.offsets[index] + at, data)
        self.written[index] = max(self.written[index], at + len(data))

    def finish(self, complete: bool) -> None:
        self.sink.write_at(0, self._headers(incomplete=not complete))


def without_zero_pages(v: Vmcore, keep: npt.NDArray[np.bool_], chunk: int) -> tuple[
        npt.NDArray[np.bool_], int]:
    """`keep` minus the pages that are all zeros, and how many those were."""
    ps = v.page_size
    out = keep.copy()
    zeros = 0
    for r in plan_runs(v, keep):
        for at in range(0, r.size, chunk * ps):
            n = min(chunk * ps, r.size - at)
            data = v.pread(n, r.src + at)
            if len(data) % ps or r.paddr % ps:
                continue  # partial pages at segment edges are kept as they are
            z = zero_pages(data, ps)
            first = (r.paddr + at) // ps
            out[first:first + len(z)] &= ~z
            zeros += int(z.sum())
    return out, zeros

