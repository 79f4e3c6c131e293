"""A cpio "newc" writer, so the initramfs is built without root or device-node privileges.

Format: Documentation/driver-api/early-userspace/buffer-format.rst. Every entry is
owned by 0:0 and carries a fixed mtime, so equal inputs give equal archives.
"""

from __future__ import annotations

import stat
from typing import Protocol

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
MTIME = 0


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


class Writable(Protocol):
    """What the archive goes to: a file, or a compressor's stream (gzip, xz)."""

    def write(self, data: bytes, /) -> int: ...


class NewcWriter:
    """Append entries to a binary stream; parents must be added before children."""

    def __init__(self, out: Writable) -> None:
        self.out = out
        self.ino = 0
        self.written = 0  # uncompressed bytes, for size reports

    def _entry(self, name: str, mode: int, data: bytes = b"",
               rdev: tuple[int, int] = (0, 0)) -> None:
        self.ino += 1
        encoded = name.encode() + b"\0"
        fields = (
            self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, MTIME, len(data),
            0, 0, rdev[0], rdev[1], len(encoded), 0,
        )
        header = MAGIC + b"".join(b"%08X" % f for f in fields)
        chunk = header + encoded + _pad4(len(header) + len(encoded)) + data + _pad4(len(data))
        self.out.write(chunk)
        self.written += len(chunk)

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm)

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def add_symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def close(self) -> None:
        """Write the trailer; the stream stays open for the caller."""
        self._entry(TRAILER, 0)


def read_names(data: bytes) -> list[tuple[str, int, bytes]]:
    """Parse an uncompressed newc archive into (name, mode, data); for tests and checks."""
    entries = []
    pos = 0
    while pos < len(data):
        if data[pos:pos + 6] != MAGIC:
            if data[pos] == 0:  # padding between concatenated archives
                pos += 1
                continue
            raise ValueError(f"bad newc magic at offset {pos}")
        fields = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        body = name_start + namesize
        body += -body % 4
        entries.append((name, mode, data[body:body + filesize]))
        pos = body + filesize
        pos += -pos % 4
    return [e for e in entries if e[0] != TRAILER]
