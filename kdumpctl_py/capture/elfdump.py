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

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kdumpctl_py.capture.filter import zero_pages
from kdumpctl_py.capture.sink import Sink
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.facts.elfcore import EHDR, PHDR, Segment, pack_core

if TYPE_CHECKING:  # numpy.typing takes a second to import in a TCG capture kernel
    import numpy.typing as npt

PT_LOAD, PT_NOTE, PF_RWX = 1, 4, 7
ELF_INCOMPLETE = 1


PFN_EXCLUDED = 256  # makedumpfile: shorter runs of excluded pages are written anyway


@dataclass(frozen=True)
class Run:
    """One output PT_LOAD: where its data starts in the input, its addresses and sizes."""

    src: int
    paddr: int
    vaddr: int
    filesz: int
    memsz: int


def _page_runs(mask: npt.NDArray[np.bool_]) -> list[tuple[bool, int]]:
    """(value, length) of the runs of equal values in `mask`."""
    if not len(mask):
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [len(mask)])))
    return [(bool(mask[i]), int(n)) for i, n in zip(starts, lengths, strict=True)]


def plan_runs(v: Vmcore, keep: npt.NDArray[np.bool_]) -> list[Run]:
    ps = v.page_size
    runs: list[Run] = []
    for seg in v.core.loads:
        if seg.paddr % ps or seg.filesz % ps or seg.filesz != seg.memsz:
            if seg.filesz:  # not page-shaped: keep it whole
                runs.append(Run(seg.offset, seg.paddr, seg.vaddr, seg.filesz, seg.memsz))
            continue
        first = seg.paddr // ps
        mask = np.zeros(seg.filesz // ps, dtype=bool)
        inside = keep[first:first + len(mask)]
        mask[:len(inside)] = inside
        start, memsz, filesz, excluded = seg.paddr, 0, 0, 0
        for kept, n in _page_runs(mask):
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


def kept_page_runs(v: Vmcore, keep: npt.NDArray[np.bool_]) -> list[tuple[int, int, int]]:
    """(input file offset, first pfn, page count) of each run of kept whole pages."""
    ps = v.page_size
    out = []
    for seg in v.core.loads:
        first, last = -(-seg.paddr // ps), (seg.paddr + seg.filesz) // ps
        pos = first
        for kept, n in _page_runs(keep[first:max(first, min(last, len(keep)))]):
            if kept:
                out.append((seg.offset + pos * ps - seg.paddr, pos, n))
            pos += n
    return out


class ElfWriter:
    def __init__(self, sink: Sink, machine: int, notes: bytes, runs: list[Run]) -> None:
        self.sink, self.machine, self.notes, self.runs = sink, machine, notes, runs
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
    for src, pfn, count in kept_page_runs(v, keep):
        for at in range(0, count, chunk):
            n = min(chunk, count - at)
            z = zero_pages(v.pread(n * ps, src + at * ps), ps)
            out[pfn + at:pfn + at + len(z)] &= ~z
            zeros += int(z.sum())
    return out, zeros
