"""Save a vmcore: filter, compress and write it so that nothing is lost.

The dump goes to `<target>/<host>-<YYYY-MM-DD-HH:MM:SS>/vmcore` (time of the
crash, UTC), written as `vmcore-incomplete` and renamed only when whole and
fsync'd, with the crashed kernel's log beside it as `vmcore-dmesg.txt`. Files
are 0600 in a 0700 directory, created relative to the directory's fd with
O_NOFOLLOW so a symlink planted in it is refused, not followed (the target itself
may be one: /var/crash linked to a larger disk).

Pages are read with pread in chunks, and compressed on a thread pool while
the main thread writes, in order: memory use is a few chunks, whatever the
size of the dump.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import sys
import time
from _thread import get_ident  # threading's, without importing threading at one thread
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol

import numpy as np

from kdumpctl_py.arch import arch_for_machine
from kdumpctl_py.capture.bitmaps import PageBitmaps, Written, true_runs
from kdumpctl_py.capture.budget import DEFAULT_LIMIT, chunk_pages, threads_within, window_pages
from kdumpctl_py.capture.compress import Codec, Compressor, codec, stored_forms
from kdumpctl_py.capture.dumpdir import (
    TargetError,
    check_space,
    crash_time,
    dump_name,
    make_dump_dir,
    open_incomplete,
    settle,
    target_error,
    utsname,
    write_dmesg,
)
from kdumpctl_py.capture.elfdump import ElfWriter, Run, plan_runs, without_zero_pages
from kdumpctl_py.capture.filter import (
    DL_ZERO,
    FilterStats,
    dumpable_windows,
    fill_pages,
    max_mapnr,
)
from kdumpctl_py.capture.kdumpfile import (
    PAGE_DESC,
    PAGE_DESC_DTYPE,
    SUB_HEADER,
    DiskDumpHeader,
    KdumpWriter,
    SubHeader,
    bitmap_blocks,
)
from kdumpctl_py.capture.sink import FileSink, FlatSink, Sink
from kdumpctl_py.capture.vmcore import UNREADABLE_ERRNOS, MissingMemory, Vmcore
from kdumpctl_py.config.settings import FORMATS
from kdumpctl_py.elf import NT_PRSTATUS, PT_NOTE
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.elfcore import parse_notes
from kdumpctl_py.journal import warn
from kdumpctl_py.units import format_bytes

if TYPE_CHECKING:  # numpy.typing takes a second to import in a TCG capture kernel
    from concurrent.futures import ThreadPoolExecutor

    import numpy.typing as npt


class Interrupted(KdumpError):
    """SIGTERM or SIGINT arrived while saving."""


class IncompleteDump(KdumpError):
    """Saving finished but some pages could not be read; the dump says it is incomplete."""

    def __init__(self, message: str, result: SaveResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class SaveOptions:
    """How to save: the command line and kdump.conf, resolved."""

    dump_level: int = 31
    compress: str = "zstd"
    flat: bool = False
    format: str = "kdump"
    threads: int = 0  # 0: one per CPU
    progress: bool = True
    check_space: bool = True
    struct_pages: bool = True  # False: filter zero pages only, never read struct pages
    tolerant: bool = False  # keep the pages of a section whose page decisions raised
    memory_limit: int = 0  # bytes; 0: budget.DEFAULT_LIMIT
    zlib_engine: str = "auto"  # capture/compress.py: zlib_engine
    # (start, size) of RAM that firmware keeps from the kernel (firmware_memory): pages
    # there that cannot be read are left out and the dump stays complete, since the
    # crashed kernel could not read them either.
    firmware: tuple[tuple[int, int], ...] = ()


@dataclass
class SaveResult:
    """What a save wrote, for the summary line, save.json and capture."""

    directory: str | None
    vmcore: str
    complete: bool
    pages_total: int
    pages_dumped: int  # pages whose data is in the dump
    pages_zero: int  # zero pages left out (dump level bit 1), in either format
    bytes_out: int
    seconds: float
    stats: FilterStats = field(default_factory=FilterStats)
    unreadable: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # of `unreadable`, those the dump lacks
    dump_level: int = 0  # the level written: lower than asked when struct pages went unread
    peak_rss: int = 0  # bytes, this process's high-water mark when saving ended

    @property
    def lost_text(self) -> str:
        """unreadable-pages.txt: the pfns the dump lacks, one a line, in hex."""
        return "".join(f"{pfn:#x}\n" for pfn in self.lost)

    @property
    def withheld(self) -> int:
        """Unreadable pages in firmware memory (SaveOptions.firmware): left out, not lost."""
        return len(self.unreadable) - len(self.lost)


# -- what goes into the headers ------------------------------------------------


def _note_blob(v: Vmcore) -> tuple[bytes, int, int]:
    """The vmcore's PT_NOTE bytes, and (offset, size) of the VMCOREINFO text inside them."""
    notes = [s for s in v.core.segments if s.type == PT_NOTE]
    blob = b"".join(v.pread(s.filesz, s.offset) for s in notes)
    for note in parse_notes(blob, v.path):
        if note.name == "VMCOREINFO":
            return blob, note.desc_offset, len(note.desc)
    return blob, 0, 0


# -- reading pages ---------------------------------------------------------------

PageRun = tuple[int, int, int]  # first pfn, page count, file offset (-1: see _runs)


def _runs(v: Vmcore, windows: Iterable[tuple[int, npt.NDArray[np.bool_]]]) -> Iterator[PageRun]:
    """(first pfn, page count, file offset) for chunks of consecutive dumpable pages, in pfn
    order, window by window (the 2nd bitmap's windows); offset -1 for a page that a segment
    starts or ends inside (read zero-filled). Work per run of pages, not per page."""
    ps = v.page_size
    shift = ps.bit_length() - 1
    chunk = chunk_pages(ps)
    ranges = v.phys_ranges()
    last = -1  # the last partial page yielded: two segments may share it

    def partial(pfn: int, ws: int, keep: npt.NDArray[np.bool_]) -> Iterator[PageRun]:
        nonlocal last
        if pfn > last and ws <= pfn < ws + len(keep) and keep[pfn - ws]:
            last = pfn
            yield pfn, 1, -1

    for ws, keep in windows:
        we = ws + len(keep)
        for paddr, size, offset in ranges:
            first, end = -(-paddr // ps), (paddr + size) >> shift
            if paddr & (ps - 1):
                yield from partial(paddr >> shift, ws, keep)
            lo, hi = max(first, ws), min(end, we)
            if lo < hi:
                # where runs of dumpable pages start and end: two numbers per run, not one
                # per page; each run is cut into chunks
                for a, b in true_runs(keep[lo - ws:hi - ws]):
                    for i in range(a, b, chunk):
                        pfn = lo + i
                        yield pfn, min(chunk, b - i), offset + (pfn << shift) - paddr
            if (paddr + size) & (ps - 1):
                yield from partial((paddr + size) >> shift, ws, keep)


def _grouped(runs: Iterable[PageRun], chunk: int) -> Iterator[list[PageRun]]:
    """Runs gathered into chunks of at most `chunk` pages, in order, so that what a chunk
    costs beside its pages (numpy calls, descriptors, two writes) is paid per chunk, not
    per run: the 64 GiB synthetic machine's 7,445 runs (41 pages each) make 1,192 chunks."""
    group: list[PageRun] = []
    pages = 0
    for run in runs:
        if group and pages + run[1] > chunk:
            yield group
            group, pages = [], 0
        group.append(run)
        pages += run[1]
    if group:
        yield group


class _Chunk(NamedTuple):
    """One chunk's pages, read and compressed: descriptors and stored forms."""

    end: int  # the pfn after its last page
    descs: npt.NDArray[Any]
    parts: list[bytes]  # the pages' stored forms, written one after the other
    size: int  # their bytes
    zeros: int
    unreadable: list[int]


def _read_pages(v: Vmcore, offset: int, count: int, pfn: int,
                size: int | None = None) -> tuple[bytes, list[int]]:
    """Pages from the file (`size` bytes of them: an ELF segment may end inside its last
    page); a page that cannot be read (EIO, EFAULT) comes back as zeros, listed. Offset -1: one
    page that segments cover only in part, the rest zero-filled."""
    ps = v.page_size
    want = count * ps if size is None else size
    if offset < 0:
        return _read_partial_page(v, pfn)
    try:
        data = v.pread(want, offset)
        if len(data) == want:
            return data, []
    except OSError as e:
        if e.errno not in UNREADABLE_ERRNOS:
            raise
    return _read_page_by_page(v, offset, count, pfn, want)


def _read_partial_page(v: Vmcore, pfn: int) -> tuple[bytes, list[int]]:
    ps = v.page_size
    try:
        return v.read_phys_filled(pfn * ps, ps), []
    except MissingMemory:
        return bytes(ps), [pfn]
    except OSError as e:
        if e.errno not in UNREADABLE_ERRNOS:
            raise
        return bytes(ps), [pfn]


def _read_page_by_page(v: Vmcore, offset: int, count: int, pfn: int,
                       want: int) -> tuple[bytes, list[int]]:
    """After a read of many pages failed: each page alone, so only the bad ones are lost."""
    ps = v.page_size
    out, bad = bytearray(), []
    for i in range(count):
        n = min(ps, want - i * ps)
        try:
            page = v.pread(n, offset + i * ps)
        except OSError as e:
            if e.errno not in UNREADABLE_ERRNOS:
                raise
            page = b""
        if len(page) != n:
            bad.append(pfn + i)
            page = bytes(n)
        out += page
    return bytes(out), bad


def _gather(v: Vmcore, runs: list[PageRun], buf: bytearray) -> tuple[memoryview, list[int],
                                                                     list[int]]:
    """The pages of `runs` in `buf` (grown when too small, reused from chunk to chunk so
    that no chunk costs fresh pages from the kernel), each run read straight into its
    place; the pfns of the pages that could not be read, and their positions."""
    ps = v.page_size
    size = sum(n for _, n, _ in runs) * ps
    if len(buf) < size:
        buf.extend(bytes(size - len(buf)))
    view = memoryview(buf)[:size]
    unreadable: list[int] = []
    where: list[int] = []
    at = 0
    for pfn, n, offset in runs:
        part = view[at * ps:(at + n) * ps]
        if offset < 0 or not _read_whole(v, part, offset):
            piece, unread = _read_pages(v, offset, n, pfn)
            part[:] = piece
            unreadable += unread
            where += [at + b - pfn for b in unread]
        at += n
    return view, unreadable, where


def _read_whole(v: Vmcore, part: memoryview, offset: int) -> bool:
    """Whether `part` could be filled from the file at `offset` in one read."""
    try:
        return v.pread_into(part, offset) == len(part)
    except OSError as e:
        if e.errno not in UNREADABLE_ERRNOS:
            raise
        return False


def _make_chunk(v: Vmcore, runs: list[PageRun], compressor: Compressor | None,
                flag: int, zero_shared: bool, fills: dict[int, bytes], buf: bytearray) -> _Chunk:
    """Read and compress the pages of `runs` (read into `buf`, this thread's own);
    unreadable pages get no descriptor at all."""
    ps = v.page_size
    data, bad, where = _gather(v, runs, buf)
    count = len(data) // ps
    fill, filled = fill_pages(data, ps)
    zeros = filled & (fill == 0)
    readable = np.ones(count, dtype=bool)
    readable[where] = False
    shared = zeros[readable] if zero_shared else np.zeros(int(readable.sum()), dtype=bool)
    stored = np.flatnonzero(readable & ~(zeros & zero_shared))
    # Per page only the codec, called from C by map() (without the GIL); a page of one
    # repeated word takes the stored form of an earlier page like it.
    if compressor:
        one_word = filled[stored]
        parts = stored_forms(data, (stored[~one_word] * ps).tolist(), ps, compressor)
        # positions in ascending order: each insert leaves the earlier ones in place
        for i, word in zip(np.flatnonzero(one_word).tolist(), fill[stored[one_word]].tolist(),
                           strict=True):
            parts.insert(i, fills.get(word) or _filled(fills, word, compressor, ps))
    else:
        parts = [bytes(data[o:o + ps]) for o in (stored * ps).tolist()]
    packed = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
    raw = packed == ps
    descs = np.zeros(len(shared), dtype=PAGE_DESC_DTYPE)
    own = ~shared
    descs["offset"][shared] = -1  # the writer points them at the shared zero page
    descs["offset"][own] = np.cumsum(packed) - packed
    descs["size"][own] = packed
    descs["flags"][own] = np.where(raw, 0, flag)
    return _Chunk(runs[-1][0] + runs[-1][1], descs, parts, int(packed.sum()),
                  int(zeros[readable].sum()), bad)


FILLS_KEPT = 1024  # distinct words whose pages' stored form is kept: at most a few 100 KB


def _filled(fills: dict[int, bytes], word: int, compressor: Compressor, size: int) -> bytes:
    """The stored form of a page that is `word` over and over, made once and kept."""
    page = word.to_bytes(8, "little") * (size // 8)
    (out,) = stored_forms(page, [0], size, compressor)
    if len(fills) < FILLS_KEPT:
        fills[word] = out
    return out


# -- the run ---------------------------------------------------------------------


class _Progress:
    """One line on stderr at most once a second: percentage, MB/s, ETA."""

    def __init__(self, total: int, page_size: int, enabled: bool) -> None:
        self.total, self.page_size, self.enabled = max(total, 1), page_size, enabled
        self.start = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 1.0:
            return
        self.last = now
        rate = done * self.page_size / max(now - self.start, 1e-6)
        eta = (self.total - done) * self.page_size / max(rate, 1)
        print(f"kdumpctl-py: saving {100 * done // self.total:3d}%  {rate / 1e6:7.1f} MB/s  "
              f"ETA {eta:4.0f}s", file=sys.stderr, flush=True)


def _estimate(v: Vmcore, bitmaps: PageBitmaps, comp: Codec | None, meta: int) -> int:
    """Bytes the dump will take: metadata plus a compressed sample of the pages, scaled."""
    total_pages = bitmaps.dumpable
    if not total_pages:
        return meta
    ranks = np.linspace(0, total_pages - 1, num=min(256, total_pages)).astype(np.int64)
    sample = bitmaps.nth_dumpable(ranks)
    ps = v.page_size
    compressor = comp.make() if comp else None
    total = 0
    for pfn in sample.tolist():
        try:
            page = v.read_phys(pfn * ps, ps)
        except (MissingMemory, OSError):
            page = bytes(ps)
        total += min(len(compressor(memoryview(page))), ps) if compressor else ps
    return meta + total * total_pages // len(sample)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into an exception so the dump is closed as incomplete, not torn."""
    def handler(signum: int, frame: object) -> None:
        raise Interrupted(f"interrupted by signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def save_vmcore(vmcore_path: str, target: str, options: SaveOptions,
                stream: BinaryIO | None = None, made: list[str] | None = None) -> SaveResult:
    """Save `vmcore_path` under `target` (or as a flattened stream to `stream`); the
    dump's directory is added to `made` as soon as it exists, so that a caller whose
    save failed knows what it left (capture.fallback).

    Every fd and file it opens goes on one ExitStack, so a save that fails at any
    step releases them all: an fd left open keeps the target busy, and capture
    unmounts it next. SIGTERM raises Interrupted anywhere in it, so that the capture
    service, stopped, still says why and closes what it wrote as incomplete."""
    started = time.monotonic()
    _check_options(options)
    if options.threads > _threads(options):
        limit = format_bytes(options.memory_limit or DEFAULT_LIMIT)
        warn(f"--threads {options.threads}: the memory limit, {limit}, holds the chunks in "
             f"flight of {_threads(options)}; saving with those")
    comp = codec(options.compress, options.zlib_engine) if options.format == "kdump" else None
    with sigterm_raises(), contextlib.ExitStack() as stack:
        v = stack.enter_context(Vmcore(vmcore_path, partial=True))
        result, layout = _plan(v, options, comp)
        dir_fd = -1
        if stream is None:
            # The directory and the log first, the space check after: a dump refused for
            # want of room still leaves the kernel log, the first thing anyone reads.
            dir_fd = _dump_dir(stack, v, target, result, made)
            if options.check_space:
                check_space(target, layout.most(v), lambda: layout.need(v, comp))
            sink = _open_sink(stack, dir_fd, target, options.flat, result)
        else:
            try:
                sink = FlatSink(stream)  # its header goes out at once
            except OSError as e:
                raise _cut_short(e, _where(result), target) from None
        _write(v, layout, sink, comp, options, result, target)
        if dir_fd >= 0:
            try:
                settle(dir_fd, result.vmcore, result.lost_text)
            except OSError as e:
                raise target_error(e, f"finishing {_where(result)} failed",
                                   "; the dump there keeps its -incomplete name") from None
    result.seconds = time.monotonic() - started
    result.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if not result.complete:
        from kdumpctl_py.capture.extent import truncation

        # found by review: a copy cut short read as unreadable pages, with no word of why
        cut = truncation(vmcore_path)
        why = f": it is {cut}" if cut is not None else ""
        raise IncompleteDump(
            f"{len(result.lost)} pages could not be read from {vmcore_path}{why} (listed in "
            f"unreadable-pages.txt); {_where(result)} holds the rest, marked incomplete", result)
    return result


def _check_options(options: SaveOptions) -> None:
    if not 0 <= options.dump_level <= 31:
        raise UsageError(f"dump level {options.dump_level} is not between 0 and 31")
    if options.format not in FORMATS:
        raise UsageError(f"unknown format {options.format!r} (choose from {', '.join(FORMATS)})")


def _threads(options: SaveOptions) -> int:
    """The compression threads: as asked (0: one per CPU), no more than the memory budget
    holds the chunks of."""
    return threads_within(options.memory_limit or DEFAULT_LIMIT,
                          options.threads or os.cpu_count() or 1)


def _plan(v: Vmcore, options: SaveOptions,
          comp: Codec | None) -> tuple[SaveResult, KdumpLayout | ElfLayout]:
    """Decide the pages (window by window) and lay out the file that will hold them."""
    stats = FilterStats()
    window = window_pages(options.memory_limit or DEFAULT_LIMIT, _threads(options))
    bitmaps = PageBitmaps(max_mapnr(v))
    for first, present_w, keep_w in dumpable_windows(
            v, options.dump_level, stats, options.struct_pages, options.tolerant, window):
        bitmaps.add(first, present_w, keep_w)
    result = SaveResult(None, "-", False, bitmaps.nr, bitmaps.dumpable, 0, 0, 0.0, stats,
                        dump_level=stats.level_written(options.dump_level))
    for warning in stats.warnings:
        warn(warning)
    notes, vi_off, vi_size = _note_blob(v)
    if options.format == "kdump":
        return result, _kdump_layout(v, bitmaps, notes, vi_off, vi_size, comp,
                                     result.dump_level)
    if options.dump_level & DL_ZERO:  # found in a first pass
        bitmaps, result.pages_zero = without_zero_pages(v, bitmaps, chunk_pages(v.page_size))
        result.pages_dumped = bitmaps.dumpable
    return result, ElfLayout(v.core.machine, notes, plan_runs(v, bitmaps))


def _dump_dir(stack: contextlib.ExitStack, v: Vmcore, target: str, result: SaveResult,
              made: list[str] | None) -> int:
    """The dump's new directory (its fd, closed by `stack`) with the kernel log in it: the
    log is small and the first thing anyone reads, so a disk that fills up during the
    dump still leaves it behind."""
    try:
        result.directory, dir_fd = make_dump_dir(target, dump_name(v))
        stack.callback(os.close, dir_fd)
        if made is not None:
            made.append(result.directory)
        write_dmesg(v, dir_fd)
        return dir_fd
    except OSError as e:
        raise target_error(e, f"cannot write under {target}") from None


def _open_sink(stack: contextlib.ExitStack, dir_fd: int, target: str, flat: bool,
               result: SaveResult) -> Sink:
    """The sink of the dump's vmcore-incomplete, closed by `stack`."""
    try:
        result.vmcore = "vmcore.flat" if flat else "vmcore"
        fd = open_incomplete(dir_fd, result.vmcore)
        if not flat:
            stack.callback(os.close, fd)
            return FileSink(fd)
        stream = os.fdopen(fd, "wb")
        stack.callback(_close_stream, stream)
        return FlatSink(stream, owned=True)
    except OSError as e:
        raise target_error(e, f"cannot write under {target}") from None


def _close_stream(stream: BinaryIO) -> None:
    """Close a flat dump's file (its fd always): a whole dump's data was flushed and fsync'd
    by the sink, so only a failed one's close can fail, flushing into the full disk again,
    and that error must not replace the one that says why the dump failed."""
    with contextlib.suppress(OSError):
        stream.close()


def _write(v: Vmcore, layout: KdumpLayout | ElfLayout, sink: Sink, comp: Codec | None,
           options: SaveOptions, result: SaveResult, target: str) -> None:
    """Write the dump through `sink`; one cut short is closed as incomplete, readable.
    Pages that could not be read outside firmware memory (result.lost) leave it incomplete."""
    frontier = [0]  # pages below it had their chunk written
    writer = layout.writer(sink)
    try:
        writer.begin()
        if isinstance(writer, ElfWriter):
            _write_elf(v, writer, options, result)
            _find_lost(result, options.firmware, v.page_size)
            writer.finish(not result.lost)
        else:
            _write_pages(v, writer.bitmaps, writer, comp, options, result, frontier)
            _find_lost(result, options.firmware, v.page_size)
            # Pages that could not be read have no descriptor: take them out of the bitmap.
            writer.finish(not result.lost,
                          _written(frontier, result) if result.unreadable else None)
        if isinstance(sink, FlatSink):
            sink.end()
        sink.sync()
    except BaseException as e:  # whatever stops it, the dump is closed as incomplete
        _close_incomplete(writer, sink, _written(frontier, result))
        if isinstance(e, (OSError, Interrupted, KeyboardInterrupt)):
            raise _cut_short(e, _where(result), target) from None
        raise  # anything else (a bug, MemoryError) as it is
    result.complete = not result.lost
    result.bytes_out = sink.size


def _find_lost(result: SaveResult, firmware: tuple[tuple[int, int], ...], ps: int) -> None:
    find_lost(result, [pfn * ps for pfn in result.unreadable], firmware)


def find_lost(result: SaveResult, paddrs: list[int | None],
              firmware: tuple[tuple[int, int], ...]) -> None:
    """Set result.lost: of result.unreadable (each at the physical address beside it in
    `paddrs`, None where none is known), all but those in `firmware`, which are withheld
    and said once (QEMU's OpenSBI before 1.3 leaves its PMP-guarded RAM in the kernel's
    System RAM, so the elfcorehdr kexec_file_load builds covers it)."""
    result.lost = [page for page, paddr in zip(result.unreadable, paddrs, strict=True)
                   if paddr is None
                   or not any(start <= paddr < start + size for start, size in firmware)]
    if result.withheld:
        warning = (f"{result.withheld} pages of firmware memory (/reserved-memory) could not "
                   "be read and are left out; the crashed kernel could not read them either")
        result.stats.warnings.append(warning)
        warn(warning)


def _cut_short(e: BaseException, where: str, target: str) -> BaseException:
    """What to raise when writing stopped: the target's failure, or the interruption."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        if target == "-":
            return TargetError(f"writing the stream failed: {e.strerror}; it is cut short, "
                               "marked incomplete")
        return TargetError(f"the disk under {target} filled up; {where} holds the pages "
                           "written so far, marked incomplete")
    if isinstance(e, OSError):
        return target_error(e, f"writing {where} failed",
                            "; it holds the pages written so far, marked incomplete")
    return Interrupted(f"interrupted; {where} holds an incomplete dump")


def _where(result: SaveResult) -> str:
    return f"{result.directory}/{result.vmcore}-incomplete" if result.directory else "the stream"


class KdumpLayout(NamedTuple):
    """A kdump-compressed file's headers and bitmaps, as KdumpWriter takes them."""

    header: DiskDumpHeader
    sub: SubHeader
    notes: bytes
    bitmaps: PageBitmaps
    zero_page: bool  # zero pages share one stored page
    meta: int  # bytes of everything but the page data

    def writer(self, sink: Sink) -> KdumpWriter:
        return KdumpWriter(sink, self.header, self.sub, self.notes, self.bitmaps, self.zero_page,
                           optimistic=isinstance(sink, FlatSink))

    def need(self, v: Vmcore, comp: Codec | None) -> int:
        return _estimate(v, self.bitmaps, comp, self.meta)

    def most(self, v: Vmcore) -> int:
        """The bytes it takes if no page compresses (a page is never stored larger)."""
        return self.meta + self.bitmaps.dumpable * v.page_size


class ElfLayout(NamedTuple):
    """An ELF dump's notes and PT_LOAD runs, as ElfWriter takes them."""

    machine: int
    notes: bytes
    runs: list[Run]

    def writer(self, sink: Sink) -> ElfWriter:
        return ElfWriter(sink, self.machine, self.notes, self.runs,
                         optimistic=isinstance(sink, FlatSink))

    def need(self, v: Vmcore, comp: Codec | None) -> int:
        return sum(r.filesz for r in self.runs) + len(self.notes) + 4096

    def most(self, v: Vmcore) -> int:
        return self.need(v, None)


def _kdump_layout(v: Vmcore, bitmaps: PageBitmaps, notes: bytes, vi_off: int, vi_size: int,
                  comp: Codec | None, dump_level: int) -> KdumpLayout:
    ps = v.page_size
    nr = bitmaps.nr
    sub_blocks = -(-(SUB_HEADER.size + len(notes)) // ps)
    bm_blocks = bitmap_blocks(nr, ps)
    nr_cpus = sum(1 for n in v.core.notes if n.type == NT_PRSTATUS and n.name == "CORE")
    header = DiskDumpHeader(utsname(v), (crash_time(v), 0), comp.flag if comp else 0, ps,
                            sub_blocks, bm_blocks, nr, nr_cpus)
    note_off = ps + SUB_HEADER.size
    sub = SubHeader(_phys_base(v), dump_level,
                    note_off + vi_off if vi_size else 0, vi_size, note_off, len(notes), 0, 0, nr)
    meta = (1 + sub_blocks + bm_blocks) * ps + PAGE_DESC.size * bitmaps.dumpable + ps
    return KdumpLayout(header, sub, notes, bitmaps, bool(dump_level & DL_ZERO), meta)


def _written(frontier: list[int], result: SaveResult) -> Written:
    return Written(frontier[0], tuple(result.unreadable))


def _phys_base(v: Vmcore) -> int:
    """The sub-header's phys_base as makedumpfile fills it: x86_64's NUMBER(phys_base),
    arm64's NUMBER(PHYS_OFFSET) (crash translates linear-map addresses with it),
    riscv64's NUMBER(phys_ram_base) (makedumpfile's arch/riscv64.c)."""
    arch = arch_for_machine(v.machine)
    return v.vmcoreinfo.number(arch.phys_base_name if arch else "phys_base") or 0


def _write_elf(v: Vmcore, elf: ElfWriter, options: SaveOptions, result: SaveResult) -> None:
    ps = v.page_size
    total = sum(r.filesz for r in elf.runs)
    progress = _Progress(total // ps, ps, options.progress)
    done = 0
    for i, r in enumerate(elf.runs):
        step = chunk_pages(ps) * ps
        for at in range(0, r.filesz, step):
            n = min(step, r.filesz - at)
            data, bad = _read_pages(v, r.src + at, -(-n // ps), (r.paddr + at) // ps, n)
            result.unreadable.extend(bad)
            elf.add(i, at, data[:n])
            done += n
            progress.update(done // ps)


def _write_pages(v: Vmcore, bitmaps: PageBitmaps, writer: KdumpWriter,
                 comp: Codec | None, options: SaveOptions, result: SaveResult,
                 frontier: list[int]) -> None:
    """Read, compress and write the dumpable pages in pfn order, chunks compressed on
    `threads` threads while this one writes; `frontier` follows what is written."""
    threads = _threads(options)
    progress = _Progress(result.pages_dumped, v.page_size, options.progress)
    zero_shared = bool(options.dump_level & DL_ZERO)
    pending: deque[_Pending] = deque()
    index = 0
    compressors: dict[int, Compressor] = {}
    buffers: dict[int, bytearray] = {}  # each thread's read buffer
    fills: dict[int, bytes] = {}  # the stored form of pages of one repeated word, by word

    def work(runs: list[PageRun]) -> _Chunk:
        tid = get_ident()
        if comp and tid not in compressors:
            compressors[tid] = comp.make()
        return _make_chunk(v, runs, compressors.get(tid), comp.flag if comp else 0,
                           zero_shared, fills, buffers.setdefault(tid, bytearray()))

    def drain_one() -> None:
        nonlocal index
        chunk = pending.popleft().result()
        writer.add(index, chunk.descs, chunk.parts, chunk.size)
        index += len(chunk.descs)
        frontier[0] = chunk.end
        if zero_shared:  # the shared zero page stands for them: no data written
            result.pages_zero += chunk.zeros
            result.pages_dumped -= chunk.zeros
        result.pages_dumped -= len(chunk.unreadable)  # no descriptor, no data
        result.unreadable.extend(chunk.unreadable)
        progress.update(index)

    executor = _pool(threads)
    # Two chunks per thread keep the pool busy while this one writes; made here, each is
    # written at once: holding one while making the next would only take memory.
    in_flight = 2 * threads if executor else 1

    def submit(runs: list[PageRun]) -> _Pending:
        """One thread (the capture kernel's one CPU) makes each chunk where it is
        submitted, without two thread switches per chunk."""
        return executor.submit(work, runs) if executor else _Done(work(runs))

    with executor or contextlib.nullcontext():
        try:
            for runs in _grouped(_runs(v, bitmaps.dumpable_windows()), chunk_pages(v.page_size)):
                pending.append(submit(runs))
                if len(pending) >= in_flight:
                    drain_one()
            while pending:
                drain_one()
        finally:
            for f in pending:
                f.cancel()


def _pool(threads: int) -> ThreadPoolExecutor | None:
    """The compression threads; none for one thread, which makes each chunk itself."""
    if threads < 2:  # concurrent.futures imports logging: 10 ms the capture kernel never needs
        return None
    from concurrent.futures import ThreadPoolExecutor

    _one_malloc_arena()
    return ThreadPoolExecutor(max_workers=threads)


M_ARENA_MAX = -8  # glibc's malloc.h


def _one_malloc_arena() -> None:
    """glibc gives each thread that allocates an arena of its own, whose touched pages stay
    resident: the compression threads share the main one (zlib allocates its state once per
    page, the lock is no contention), peak RSS at two threads 40.4 to 38.3 MB on the 2 GiB
    vmcore. Without glibc's mallopt there is nothing to do."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)


class _Pending(Protocol):
    """A chunk on its way: a concurrent.futures.Future, or one made already (_Done)."""

    def result(self) -> _Chunk: ...

    def cancel(self) -> bool: ...


class _Done:
    """A chunk made where it was submitted (one thread), as a future would hold it."""

    def __init__(self, chunk: _Chunk) -> None:
        self.chunk = chunk

    def result(self) -> _Chunk:
        return self.chunk

    def cancel(self) -> bool:
        return False


def _close_incomplete(writer: KdumpWriter | ElfWriter, sink: Sink, written: Written) -> None:
    """Leave a readable dump that says it is incomplete and covers only what was written."""
    try:
        if isinstance(writer, KdumpWriter):
            writer.finish(False, written)
        else:
            writer.finish(False)
        sink.sync()
    except OSError:
        pass
