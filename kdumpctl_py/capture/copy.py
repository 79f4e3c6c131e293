"""The last resort: /proc/vmcore copied byte for byte as an ELF file, nothing parsed but
what names the directory.

When filtering failed at every level, this still writes a dump every tool
reads (crash, drgn, `analyse`). A page the old kernel cannot give back (EIO or EFAULT)
is written as zeros and its file offset listed in unreadable-pages.txt, and the dump is then
left as vmcore-incomplete, as `save` leaves one; in RAM firmware keeps from the kernel
(`firmware`, as SaveOptions.firmware), where the headers place the page, it only gets a
warning, as in `save`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time

from kdumpctl_py.capture.dumpdir import (
    dump_name,
    make_dump_dir,
    open_incomplete,
    settle,
    target_error,
    write_dmesg,
)
from kdumpctl_py.capture.save import Interrupted, SaveResult, find_lost, sigterm_raises
from kdumpctl_py.capture.sink import FileSink
from kdumpctl_py.capture.vmcore import UNREADABLE_ERRNOS, Vmcore
from kdumpctl_py.errors import UsageError

CHUNK = 4 << 20
PAGE = 4096


def copy_vmcore(vmcore_path: str, target: str, firmware: tuple[tuple[int, int], ...] = (),
                made: list[str] | None = None) -> SaveResult:
    """Copy the vmcore whole into a new dump directory, added to `made` as soon as it
    exists (as save_vmcore's); every fd is closed on every way out, SIGTERM included."""
    started = time.monotonic()
    with sigterm_raises(), contextlib.ExitStack() as stack:
        try:
            src = os.open(vmcore_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise UsageError(f"cannot open {vmcore_path}: {e.strerror}") from None
        stack.callback(os.close, src)
        directory, dir_fd, out, loads = _open_copy(stack, vmcore_path, target, made)
        result = SaveResult(directory, "vmcore", False, 0, 0, 0, 0, 0.0)
        try:
            result.bytes_out = _copy(src, out, result)
        except OSError as e:
            raise target_error(e, f"writing {directory}/vmcore-incomplete failed",
                               "; it holds what was copied so far") from None
        except (Interrupted, KeyboardInterrupt):
            raise Interrupted(f"interrupted; {directory}/vmcore-incomplete holds what was "
                              "copied so far") from None
        result.pages_total = result.pages_dumped = -(-result.bytes_out // PAGE)
        find_lost(result, [_paddr(loads, off) for off in result.unreadable], firmware)
        result.complete = not result.lost
        try:
            settle(dir_fd, "vmcore", "".join(f"file offset {off:#x}\n" for off in result.lost))
        except OSError as e:
            raise target_error(e, f"finishing {directory}/vmcore-incomplete failed",
                               "; the copy there keeps its -incomplete name") from None
    result.seconds = time.monotonic() - started
    return result


def _paddr(loads: list[tuple[int, int, int]], offset: int) -> int | None:
    """The physical address at file `offset`, by the PT_LOADs (paddr, size, offset)."""
    for paddr, size, start in loads:
        if start <= offset < start + size:
            return paddr + offset - start
    return None


def _open_copy(stack: contextlib.ExitStack, vmcore_path: str, target: str,
               made: list[str] | None) -> tuple[str, int, int, list[tuple[int, int, int]]]:
    """The dump's directory (path and fd), with the log when the vmcore parses, the fd of
    its vmcore-incomplete, all closed by `stack`, and the PT_LOADs when it parses."""
    v = parsed(vmcore_path)
    if v is not None:
        stack.callback(v.close)
    try:
        directory, dir_fd = make_dump_dir(target, directory_name(v))
        stack.callback(os.close, dir_fd)
        if made is not None:
            made.append(directory)
        if v is not None:
            try:
                write_dmesg(v, dir_fd)
            except Exception:  # noqa: BLE001 - the log is a bonus here, the copy is not
                pass
        out = open_incomplete(dir_fd, "vmcore")
    except OSError as e:
        raise target_error(e, f"cannot write under {target}") from None
    stack.callback(os.close, out)
    return directory, dir_fd, out, v.phys_ranges() if v is not None else []


def _copy(src: int, out: int, result: SaveResult) -> int:
    """Bytes copied from `src` to `out`, fsync'd."""
    size = os.fstat(src).st_size
    sink = FileSink(out)  # a short pwrite is written on, not skipped
    pos = 0
    while pos < size:
        data = _read(src, min(CHUNK, size - pos), pos, result)
        if not data:
            break
        sink.write_at(pos, data)
        pos += len(data)
    os.fsync(out)
    return pos


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
    """`size` bytes at `offset`; a page that cannot be read becomes zeros (its offset listed)."""
    try:
        return os.pread(fd, size, offset)
    except OSError as e:
        if e.errno not in UNREADABLE_ERRNOS:
            raise
    out = bytearray()
    for at in range(offset, offset + size, PAGE):
        n = min(PAGE, offset + size - at)
        try:
            out += os.pread(fd, n, at).ljust(n, b"\0")
        except OSError as e:
            if e.errno not in UNREADABLE_ERRNOS:
                raise
            result.unreadable.append(at)
            out += bytes(n)
    return bytes(out)
