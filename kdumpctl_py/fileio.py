"""Writing files so that a crash, a full disk or a concurrent edit never loses the original.

Every config and boot-loader file is replaced through `replace_atomically`:
the new contents go to a temporary file in the same directory, are fsync'd,
and are renamed over the original only when whole; the previous version is
kept as `<name>.kdumpctl-py.bak`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kdumpctl_py.errors import KdumpError, UsageError

BACKUP_SUFFIX = ".kdumpctl-py.bak"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_beside(target: Path) -> tuple[int, Path]:
    """A new file of our own beside `target`, as tempfile.mkstemp makes one; tempfile is not
    imported for it, because its random imports hashlib and with it OpenSSL's libcrypto:
    0.8 MB more peak RSS for every save (which writes save.json) and a capture kernel."""
    while True:
        tmp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue


def refuse_unless_regular(target: Path, st: os.stat_result) -> None:
    """Only a regular file is replaced: reading a device or FIFO as the old contents never
    ends (/dev/zero, a pipe), and the rename would put a file in place of the device node
    (`-o /dev/null` as root, the system's /dev/null)."""
    if stat.S_ISREG(st.st_mode):
        return
    kinds = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
             stat.S_IFBLK: "a block device", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}
    kind = kinds.get(stat.S_IFMT(st.st_mode), "not a regular file")
    raise UsageError(f"cannot write {target}: it is {kind}, and kdumpctl-py only replaces "
                     "regular files; name a file")


def no_directory(target: Path) -> UsageError:
    """The error for an output whose directory is missing: that directory, not the
    temporary file made beside the output, is what the user can act on. A mistyped path is
    bad input (exit 2)."""
    return UsageError(f"cannot write {target}: {target.parent} is not a directory; "
                      "create it, or name another file")


def replace_atomically(path: str | os.PathLike[str], data: bytes, *, expect: bytes | None = None,
                       backup: bool = True) -> Path | None:
    """Replace `path` with `data`; return the backup's path (None if no backup was made).

    With `expect`, refuse to write if the file no longer holds those bytes:
    someone else edited it since it was read.
    """
    target = Path(path)
    try:
        st = target.stat()
        refuse_unless_regular(target, st)
        old = target.read_bytes()
    except FileNotFoundError:
        st, old = None, None
    if expect is not None and old != expect:
        raise KdumpError(f"{target} changed while kdumpctl-py was editing it; nothing written, "
                         "run the command again")
    try:
        fd, tmp = new_beside(target)
    except (FileNotFoundError, NotADirectoryError):
        raise no_directory(target) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        mode = stat.S_IMODE(st.st_mode) if st else 0o644
        os.chmod(tmp, mode)
        if st:
            os.chown(tmp, st.st_uid, st.st_gid)
        saved = None
        if backup and old is not None:
            saved = target.with_name(target.name + BACKUP_SUFFIX)
            replace_atomically(saved, old, backup=False)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return saved
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
