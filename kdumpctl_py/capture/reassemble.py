"""makedumpfile's flattened stream back into the file it describes (`makedumpfile -R`).

The stream is a 4096-byte header (`makedumpfile` and two version words) and
then (offset, size) records, big-endian, each followed by its bytes; a later
record for an offset wins; (-1, -1) ends it. A stream without the end record
was cut short and is refused: the output would look whole and not be. The
output is written as OUT-incomplete and renamed when whole and fsync'd.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from kdumpctl_py.capture.sink import FLAT_END, FLAT_HEADER_SIZE, FLAT_RECORD, FLAT_SIGNATURE
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.fileio import fsync_dir, new_beside, no_directory

COPY_BYTES = 8 << 20


def _read_header(src: BinaryIO, name: str) -> None:
    """Consume the stream's header; a file without one is bad input, refused before
    OUT-incomplete is made."""
    header = src.read(FLAT_HEADER_SIZE)
    if len(header) < FLAT_HEADER_SIZE or not header.startswith(FLAT_SIGNATURE):
        raise UsageError(f"{name} is not a flattened dump (no makedumpfile header)")


def _write_failed(e: OSError, out: str) -> KdumpError:
    """A write to `out` that failed (a full disk, a damaged record's offset past what a file
    can hold), said with the file's name: pwrite's OSError has none."""
    return KdumpError(f"writing {out} failed: {e.strerror}; it holds what was written so far")


def reassemble_stream(src: BinaryIO, fd: int, out: str, name: str = "the stream") -> int:
    """Write the records of `src`, past its header, at their offsets in `fd`, the file
    `out`; returns the file's size."""
    size = 0
    consumed = FLAT_HEADER_SIZE
    buf = bytearray(COPY_BYTES)
    while True:
        raw = src.read(FLAT_RECORD.size)
        if len(raw) < FLAT_RECORD.size:
            raise KdumpError(f"{name} is cut short at byte {consumed + len(raw)}: no end "
                             "record; it was not written whole")
        offset, length = FLAT_RECORD.unpack(raw)
        consumed += FLAT_RECORD.size
        if offset == FLAT_END and length == FLAT_END:
            return size
        if offset < 0 or length < 0:
            raise KdumpError(f"{name}: a record at byte {consumed - FLAT_RECORD.size} has "
                             f"offset {offset} and size {length}")
        left = length
        while left:
            view = memoryview(buf)[:min(left, COPY_BYTES)]
            got = src.readinto(view)  # type: ignore[attr-defined]
            if not got:
                raise KdumpError(f"{name} is cut short at byte {consumed}: inside a record "
                                 f"of {length} bytes")
            chunk = view[:got]
            try:
                while chunk:
                    n = os.pwrite(fd, chunk, offset)
                    chunk, offset = chunk[n:], offset + n
            except OSError as e:
                raise _write_failed(e, out) from None
            left -= got
            consumed += got
        size = max(size, offset)


def stream_name(flat: str) -> str:
    """FLAT as messages name it: `-` is standard input."""
    return "standard input" if flat == "-" else flat


def reassemble(flat: str, out: str) -> int:
    """`kdumpctl-py reassemble FLAT OUT` (FLAT `-`: standard input); returns OUT's size."""
    import sys

    if os.path.exists(out):
        raise KdumpError(f"{out} exists; remove it or name another file")
    if not Path(out).parent.is_dir():
        raise no_directory(Path(out))
    name = stream_name(flat)
    try:
        src = open(sys.stdin.fileno(), "rb", closefd=False) if flat == "-" else open(flat, "rb")
    except OSError as e:
        raise UsageError(f"{flat}: {e.strerror}") from None
    with src:
        _read_header(src, name)
        fd, tmp = new_beside(Path(out))  # no other run writes into it
        try:
            size = _write(src, fd, tmp, f"{out}-incomplete", name)
        finally:
            os.close(fd)
    _settle(tmp, out, name)
    fsync_dir(Path(out).parent)
    return size


def _settle(tmp: Path, out: str, name: str) -> None:
    """`tmp` becomes OUT: by link(), which unlike rename never replaces an OUT made
    meanwhile; on a file system without hard links (vfat), by rename after a last look."""
    appeared = KdumpError(f"{out} appeared while {name} was reassembled; the reassembled file "
                          f"is left as {tmp}: rename it, or remove it")
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise appeared from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise
        if os.path.lexists(out):
            raise appeared from None
        os.rename(tmp, out)
        return
    os.unlink(tmp)


def _write(src: BinaryIO, fd: int, tmp: Path, partial: str, name: str) -> int:
    """Reassemble into `tmp`, fsync'd; whatever stops it leaves what was written as
    `partial` (OUT-incomplete), under the name the error gives (a stream cut short too:
    the user finds the file and knows it is not the dump)."""
    try:
        size = reassemble_stream(src, fd, partial, name)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as e:
            raise _write_failed(e, partial) from None
    except KdumpError as e:
        os.replace(tmp, partial)
        if partial in str(e):
            raise
        raise KdumpError(f"{e}; what was written is left as {partial}") from None
    except BaseException:
        os.replace(tmp, partial)
        raise
    return size
