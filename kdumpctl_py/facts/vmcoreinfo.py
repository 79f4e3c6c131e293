"""VMCOREINFO: the kernel's own description of its layout for dump tools.

It is "KEY=value" lines (kernel/vmcore_info.c). SYMBOL() and KERNELOFFSET are
hex without a prefix, SIZE/OFFSET/LENGTH/NUMBER decimal. It is the one source
of kernel addresses that works on every arch: /proc/kallsyms lacks `_text` on
arm64 6.1, which is where kexec-tools goes wrong.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from kdumpctl_py.errors import UsageError

# A real VMCOREINFO is under one page; refuse to parse more than this.
MAX_TEXT = 1 << 16
MIN_PAGE, MAX_PAGE = 4096, 65536


class VmcoreInfo(NamedTuple):
    """The crashed kernel's VMCOREINFO, KEY=value by key."""

    entries: dict[str, str]

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def _int(self, key: str, base: int) -> int | None:
        value = self.entries.get(key)
        if value is None:
            return None
        try:
            return int(value.removeprefix("0x").removeprefix("0X"), base)
        except ValueError:
            raise UsageError(f"VMCOREINFO {key}={value!r} is not a number") from None

    def symbol(self, name: str) -> int | None:
        return self._int(f"SYMBOL({name})", 16)

    def size(self, name: str) -> int | None:
        return self._int(f"SIZE({name})", 10)

    def offset(self, name: str) -> int | None:
        return self._int(f"OFFSET({name})", 10)

    def length(self, name: str) -> int | None:
        return self._int(f"LENGTH({name})", 10)

    def number(self, name: str) -> int | None:
        """NUMBER() is "%d" for most keys but "0x%llx" for arm64's layout keys."""
        value = self.entries.get(f"NUMBER({name})", "")
        return self._int(f"NUMBER({name})", 16 if value.lower().startswith("0x") else 10)

    @property
    def osrelease(self) -> str | None:
        return self.entries.get("OSRELEASE")

    @property
    def page_size(self) -> int | None:
        """PAGESIZE, a power of two from 4 KiB to 64 KiB (every architecture's)."""
        size = self._int("PAGESIZE", 10)
        if size is not None and not (MIN_PAGE <= size <= MAX_PAGE and size & (size - 1) == 0):
            raise UsageError(f"VMCOREINFO PAGESIZE={size} is not a page size (a power of two "
                             f"from {MIN_PAGE} to {MAX_PAGE}); the VMCOREINFO is damaged")
        return size

    @property
    def kernel_offset(self) -> int | None:
        """KASLR displacement of the kernel image (KERNELOFFSET, hex)."""
        return self._int("KERNELOFFSET", 16)

    @property
    def build_id(self) -> str | None:
        return self.entries.get("BUILD-ID")


def release_version(release: str | None) -> tuple[int, int] | None:
    """(major, minor) of a kernel release ("6.1.0-27-amd64", OSRELEASE), None if it has none."""
    m = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_vmcoreinfo(data: bytes | str) -> VmcoreInfo:
    """Parse VMCOREINFO text; a trailing NUL and blank lines are allowed."""
    if isinstance(data, bytes):
        if len(data) > MAX_TEXT:
            raise UsageError(f"VMCOREINFO is {len(data)} bytes, more than any kernel writes")
        text = data.split(b"\0", 1)[0].decode("ascii", "replace")
    else:
        text = data
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise UsageError(f"VMCOREINFO line is not KEY=value: {line[:80]!r}")
        entries[key] = value
    return VmcoreInfo(entries)
