"""Where a dump's bytes go: a regular file written at offsets, or makedumpfile's
flattened stream for pipes, where each write becomes an (offset, size) record
and a later record for the same offset wins when the stream is rebuilt
(`makedumpfile -R`, crash and libkdumpfile read it)."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import mmap
import os
import struct
from collections.abc import Iterable, Sequence
from typing import BinaryIO, Protocol

# What write_at takes: one buffer, or a list of them written one after the other (a chunk's
# pages as compressed, without joining them into one more copy)
Data = bytes | bytearray | memoryview | list[bytes]
IOV_MAX = os.sysconf("SC_IOV_MAX")

FLAT_SIGNATURE = b"makedumpfile"
FLAT_HEADER_SIZE = 4096
FLAT_RECORD = struct.Struct(">qq")  # struct makedumpfile_data_header, big-endian
FLAT_END = -1


class Sink(Protocol):
    size: int

    def write_at(self, offset: int, data: Data) -> None: ...
    def write_parts(self, offset: int, size: int, parts: Iterable[bytes]) -> None: ...
    def write_behind(self, start: int, end: int) -> None: ...
    def sync(self) -> None: ...


class FileSink:
    """A new, empty file: bytes past `size` (the end of what was written) read as zeros."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0

    def write_at(self, offset: int, data: Data) -> None:
        """`data` at `offset`, a list of buffers in one pwritev (per IOV_MAX of them).

        What a short write left is found from the parts' running lengths (C loops), not
        part by part: a chunk is hundreds of pages' parts."""
        parts: Sequence[bytes | bytearray | memoryview] = (
            data if isinstance(data, list) else [data])
        while parts:
            batch = parts[:IOV_MAX]
            n = os.pwritev(self.fd, batch, offset)
            offset += n
            if n >= sum(map(len, batch)):
                parts = parts[IOV_MAX:]
                continue
            ends = list(itertools.accumulate(map(len, batch)))
            whole = bisect.bisect_right(ends, n)  # parts written whole; the next one in part
            cut = n - (ends[whole - 1] if whole else 0)
            parts = [memoryview(parts[whole])[cut:], *parts[whole + 1:]]
        self.size = max(self.size, offset)

    def write_parts(self, offset: int, size: int, parts: Iterable[bytes]) -> None:
        """`size` bytes at `offset`: the parts one after the other, zeros after them.

        Zeros past the end of what was written are left as a hole: the bitmaps of
        RAM high in a sparse physical address space (arm64 above 2^48: 512 MiB each
        with 64K pages) are almost all zeros, and cost no disk or write time."""
        end = offset + size
        for part in parts:
            part = part[:end - offset]
            if offset < self.size or part.count(0) != len(part):
                self.write_at(offset, part)
            offset += len(part)
        if offset < min(end, self.size):
            self.write_at(offset, bytes(min(end, self.size) - offset))
        if self.size < end:
            os.ftruncate(self.fd, end)
            self.size = end

    def write_behind(self, start: int, end: int) -> None:
        """Bytes start..end are final: the kernel starts writing their whole pages to disk
        now and drops those already written back, so the last fsync waits for little and
        the dump does not fill the page cache (a capture kernel has a few hundred MiB).
        POSIX_FADV_DONTNEED starts writeback of dirty pages and drops only clean ones: the
        caller asks again for what it asked last time (written back since)."""
        lo, hi = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE, end // mmap.PAGESIZE * mmap.PAGESIZE
        if lo < hi:
            with contextlib.suppress(OSError):  # advice only
                os.posix_fadvise(self.fd, lo, hi - lo, os.POSIX_FADV_DONTNEED)

    def sync(self) -> None:
        os.fsync(self.fd)


class FlatSink:
    """The flattened stream on `stream`; `owned` streams (a file of ours) are fsync'd.

    Neither sink closes what it writes to: the save's ExitStack does, on every way out."""

    def __init__(self, stream: BinaryIO, owned: bool = False) -> None:
        self.stream, self.owned = stream, owned
        self.size = 0
        header = FLAT_SIGNATURE.ljust(16, b"\0") + struct.pack(">qq", 1, 1)
        stream.write(header.ljust(FLAT_HEADER_SIZE, b"\0"))

    def write_at(self, offset: int, data: Data) -> None:
        parts = data if isinstance(data, list) else [data]
        size = sum(map(len, parts))
        if not size:
            return  # libkdumpfile refuses empty records
        self.stream.write(FLAT_RECORD.pack(offset, size))
        for part in parts:  # each write on its own: ssh's watch times them one by one
            self.stream.write(part)
        self.size += FLAT_RECORD.size + size

    def write_parts(self, offset: int, size: int, parts: Iterable[bytes]) -> None:
        """One record of `size` bytes: the parts, then zeros (as one write_at of them)."""
        if not size:
            return
        self.stream.write(FLAT_RECORD.pack(offset, size))
        left = size
        for part in parts:
            chunk = part[:left]
            self.stream.write(chunk)
            left -= len(chunk)
        self.stream.write(bytes(left))
        self.size += FLAT_RECORD.size + size

    def write_behind(self, start: int, end: int) -> None:
        """Nothing: the stream's own offsets are not the dump's."""

    def sync(self) -> None:
        self.stream.flush()
        if self.owned:
            os.fsync(self.stream.fileno())

    def end(self) -> None:
        """The end record: a stream without it is known to be cut short."""
        self.stream.write(FLAT_RECORD.pack(FLAT_END, FLAT_END))
        self.stream.flush()
