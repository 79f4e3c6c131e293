"""The dump's directory: its name (the crashed host and time), its creation under the
target, and the small files written in it whole or not at all.

Shared by `save`, the plain copy and the fallback's record of failure, so a dump
is named and laid out the same whichever of them wrote it.
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from kdumpctl_py.capture.vmcore import MissingMemory, Vmcore
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.fileio import fsync_dir
from kdumpctl_py.units import format_bytes


class TargetError(KdumpError):
    """The target itself failed (full, read-only, I/O error): saving again there would too."""


# The target's own failures: full, read-only, broken, or not ours to write (a directory
# of another owner, an NFS export that squashes root).
TARGET_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES,
                 errno.EPERM)
UTSNAME_SIZE = 390  # struct new_utsname: six fields of 65 bytes
DMESG = "vmcore-dmesg.txt"  # the crashed kernel's log, the first file of a dump
# A dump's directory, <host>-YYYY-MM-DD-HH:MM:SS[-N] (dump_name, make_dump_dir), and
# its vmcore's names, whole and not.
NAME_RE = re.compile(r"^.+-(\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d)(?:-(\d+))?$")
COMPLETE = ("vmcore", "vmcore.flat")
INCOMPLETE = ("vmcore-incomplete", "vmcore.flat-incomplete")


def utsname(v: Vmcore) -> bytes:
    """The crashed kernel's struct new_utsname, zeros when it cannot be read."""
    info = v.vmcoreinfo
    base = info.symbol("init_uts_ns")
    if base is None:
        return bytes(UTSNAME_SIZE)
    # OFFSET(uts_namespace.name) is exported from 5.11; before it, the name follows
    # the struct's leading kref (an int), as makedumpfile's check_release() assumes.
    offset = info.offset("uts_namespace.name")
    try:
        return v.read_virt(base + (4 if offset is None else offset), UTSNAME_SIZE)
    except (MissingMemory, OSError):  # not in the dump, or a page it cannot give back
        return bytes(UTSNAME_SIZE)


def uts_field(uts: bytes, index: int) -> str:
    """Field `index` of a struct new_utsname (1 nodename, 2 release, 4 machine)."""
    return uts[65 * index:65 * (index + 1)].split(b"\0", 1)[0].decode("ascii", "replace")


def crash_time(v: Vmcore) -> int:
    value = v.vmcoreinfo.get("CRASHTIME")
    return int(value) if value and value.isdigit() else int(time.time())


def dump_name(v: Vmcore) -> str:
    host = uts_field(utsname(v), 1)
    host = "localhost" if host in ("", "(none)") else host
    host = "".join(c if c.isalnum() or c in "-._" else "_" for c in host)[:64] or "localhost"
    when = datetime.datetime.fromtimestamp(crash_time(v), datetime.UTC)
    return f"{host}-{when:%Y-%m-%d-%H:%M:%S}"


def name_order(name: str) -> tuple[str, int]:
    """Where a dump's name places it in time: the crash time in it, then its -N; a name
    without one first. Names themselves do not sort by time: hosts differ, -10 < -9."""
    m = NAME_RE.match(name)
    return (m.group(1), int(m.group(2) or 0)) if m else ("", 0)


def target_error(e: OSError, what: str, then: str = "") -> TargetError | OSError:
    """What to raise for `e`, met while `what`: the target's failure said in one line
    (`what: strerror` and `then`), or `e` itself."""
    if e.errno in TARGET_ERRNOS:
        return TargetError(f"{what}: {e.strerror}{then}")
    return e


def target_directory(target: str) -> None:
    """Create the target if needed, each new directory fsync'd in its parent (the dump's
    directory is in the target: an entry lost in a power failure would take the dump with
    it); a file in its place is named, not reported as EEXIST."""
    missing = []
    d = os.path.abspath(target)
    while not os.path.lexists(d):
        missing.append(d)
        d = os.path.dirname(d)
    try:
        os.makedirs(target, mode=0o700, exist_ok=True)
        for new in reversed(missing):
            fsync_dir(Path(os.path.dirname(new)))
    except (FileExistsError, NotADirectoryError):
        blocker = target
        while os.path.dirname(blocker) != blocker and not os.path.lexists(blocker):
            blocker = os.path.dirname(blocker)
        if blocker == target:
            raise TargetError(f"the target {target} is not a directory") from None
        raise TargetError(f"the target {target} cannot be created: {blocker} is not a "
                          "directory") from None
    except OSError as e:
        if e.errno in TARGET_ERRNOS:
            raise TargetError(f"cannot create the target {target}: {e.strerror}") from None
        raise


def check_space(target: str, most: int, estimate: Callable[[], int]) -> None:
    """Refuse a target without room for the dump. Room for `most` bytes, what the dump takes
    if nothing compresses, settles it; below that, `estimate()` (compressing a sample of
    the pages, a few ms) is held against what is free."""
    target_directory(target)
    st = os.statvfs(target)
    free = st.f_bavail * st.f_frsize
    if free >= most:
        return
    need = estimate()
    if free < need:
        raise TargetError(f"{target} has {format_bytes(free)} free but the dump needs about "
                          f"{format_bytes(need)}; free space or raise --dump-level")


def make_dump_dir(target: str, name: str) -> tuple[str, int]:
    """A new directory `name` (or `name-N`) under `target`: its path and an fd the caller
    closes. The target is the administrator's path and may be a symlink (/var/crash to a
    larger disk), as any directory on the way to it may; what is made in it is never
    followed through one."""
    target_directory(target)
    tfd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for n in range(100):
            candidate = name if n == 0 else f"{name}-{n}"
            try:
                os.mkdir(candidate, 0o700, dir_fd=tfd)
            except FileExistsError:
                continue
            fd = os.open(candidate, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=tfd)
            try:
                os.fsync(tfd)
            except OSError:
                os.close(fd)
                raise
            return os.path.join(target, candidate), fd
        raise KdumpError(f"{target} already holds 100 dumps named {name}")
    finally:
        os.close(tfd)


def open_incomplete(dir_fd: int, name: str) -> int:
    """`name`-incomplete, created new (never through a symlink), for the dump's data."""
    return os.open(f"{name}-incomplete", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                   | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)


def settle(dir_fd: int, name: str, unreadable: str) -> None:
    """The whole dump renamed from `name`-incomplete to `name`, or, when `unreadable`
    lists pages it lacks, those listed beside it instead; made durable either way."""
    if unreadable:
        write_file(dir_fd, "unreadable-pages.txt", unreadable.encode())
    else:
        os.rename(f"{name}-incomplete", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)


def dmesg_text(v: Vmcore) -> str:
    """vmcore-dmesg.txt: the crashed kernel's log, or why it could not be read."""
    from kdumpctl_py.capture.dmesg import read_kernel_log

    try:
        return read_kernel_log(v).text()
    except KdumpError as e:
        return f"kdumpctl-py: the kernel log could not be read: {e}\n"


def write_dmesg(v: Vmcore, dir_fd: int) -> None:
    write_file(dir_fd, DMESG, dmesg_text(v).encode())


def write_file(dir_fd: int, name: str, data: bytes) -> None:
    """`name` in the directory, replaced whole: written as name.tmp, fsync'd, renamed."""
    fd = os.open(f"{name}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        os.unlink(f"{name}.tmp", dir_fd=dir_fd)
        raise
    os.rename(f"{name}.tmp", name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
