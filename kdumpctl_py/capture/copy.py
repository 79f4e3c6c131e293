"""The last resort: /proc/vmcore copied byte for byte as an ELF file, nothing parsed but
what names the directory.

When filtering failed at every level, this still writes a dump every tool
reads (crash, drgn, `analyse`). A page the old kernel cannot give back (EIO)
is written as zeros and its file offset listed in unreadable-pages.txt, and the dump is then
left as vmcore-incomplete, as `save` leaves one.
"""

from __future__ import annotations

import datetime
import errno
import os
import time

from kdumpctl_py.capture.save import (
    TARGET_ERRNOS,
    SaveResult,
    TargetError,
    _make_dump_dir,
    _write_dmesg,
    _write_file,
    dump_name,
)
from kdumpctl_py.capture.vmcore import Vmcore
from kdumpctl_py.errors import UsageError

CHUNK = 4 << 20
PAGE = 4096


def copy_vmcore(vmcore_path: str, target: str) -> SaveResult:
    started = time.monotonic()
    try:
        src = os.open(vmcore_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise UsageError(f"cannot open {vmcore_path}: {e.strerror}") from None
    v = parsed(vmcore_path)
    name = directory_name(v)
    dir_fd = -1
    try:
        directory, dir_fd = _make_dump_dir(target, name)
        if v is not None:
            try:
                _write_dmesg(v, dir_fd)
            except Exception:  # noqa: BLE001 - the log is a bonus here, the copy is not
                pass
        out = os.open("vmcore-incomplete", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as e:
        os.close(src)
        if dir_fd >= 0:
            os.close(dir_fd)
        if e.errno in TARGET_ERRNOS:
            raise TargetError(f"cannot write under {target}: {e.strerror}") from None
        raise
    finally:
        if v is not None:
            v.close()
    result = SaveResult(directory, "vmcore", False, 0, 0, 0, 0, 0.0)
    try:
        size = os.fstat(src).st_size
        pos = 0
        while pos < size:
            data = _read(src, min(CHUNK, size - pos), pos, result)
            if not data:
                break
            os.pwrite(out, data, pos)
            pos += len(data)
        os.fsync(out)
        result.bytes_out = pos
        result.pages_total = result.pages_dumped = -(-pos // PAGE)
    except OSError as e:
        if e.errno in TARGET_ERRNOS:
            raise TargetError(f"writing {directory}/vmcore-incomplete failed: {e.strerror}; "
                              "it holds what was copied so far") from None
        raise
    finally:
        os.close(out)
        os.close(src)
    result.complete = not result.unreadable
    if result.complete:
        os.rename("vmcore-incomplete", "vmcore", src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    else:
        lines = "".join(f"file offset {off:#x}\n" for off in result.unreadable)
        _write_file(dir_fd, "unreadable-pages.txt", lines.encode())
    os.fsync(dir_fd)
    os.close(dir_fd)
    result.seconds = time.monotonic() - started
    return result


def parsed(vmcore_path: str) -> Vmcore | None:
    """The vmcore's headers, or None: a copy (or a record of failure) needs no parsing."""
    try:
        return Vmcore(vmcore_path, partial=True)
    except Exception:  # noqa: BLE001 - whatever is wrong with it, the name falls back
        return None


def directory_name(v: Vmcore | None) -> str:
    """The dump directory's name as `save` makes it, else localhost and the time now."""
    try:
        if v is not None:
            return dump_name(v)
    except Exception:  # noqa: BLE001
        pass
    return f"localhost-{datetime.datetime.now(datetime.UTC):%Y-%m-%d-%H:%M:%S}"


def _read(fd: int, size: int, offset: int, result: SaveResult) -> bytes:
    """`size` bytes at `offset`; a page that fails with EIO becomes zeros (its offset listed)."""
    try:
        return os.pread(fd, size, offset)
    except OSError as e:
        if e.errno != errno.EIO:
            raise
    out = bytearray()
    for at in range(offset, offset + size, PAGE):
        n = min(PAGE, offset + size - at)
        try:
            out += os.pread(fd, n, at).ljust(n, b"\0")
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            result.unreadable.append(at)
            out += bytes(n)
    return bytes(out)
