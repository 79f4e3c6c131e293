"""/proc/iomem as a tree of resources.

Crash regions ("Crash kernel") nest under "System RAM"; the capture kernel
must be told about RAM without them, so the tree keeps nesting intact.
Non-root readers see all addresses as zero, which `Iomem.masked` reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from kdumpctl_py.errors import UsageError

_LINE = re.compile(r"^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$")

SYSTEM_RAM = "System RAM"
CRASH_KERNEL = "Crash kernel"


class Range(NamedTuple):
    """An inclusive physical address range, as /proc/iomem prints it."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start + 1


@dataclass
class Resource:
    """One line of /proc/iomem, with the lines nested under it."""

    start: int
    end: int
    name: str
    children: list[Resource] = field(default_factory=list)

    @property
    def range(self) -> Range:
        return Range(self.start, self.end)

    def walk(self) -> list[Resource]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass
class Iomem:
    """/proc/iomem as a tree."""

    top: list[Resource]

    def all(self) -> list[Resource]:
        return [r for top in self.top for r in top.walk()]

    def named(self, name: str) -> list[Range]:
        return [r.range for r in self.all() if r.name == name]

    @property
    def system_ram(self) -> list[Range]:
        return [r.range for r in self.top if r.name == SYSTEM_RAM]

    @property
    def crash_regions(self) -> list[Range]:
        """Reserved crash regions, lowest first (x86 may have a low and a high one)."""
        return sorted(self.named(CRASH_KERNEL), key=lambda r: r.start)

    @property
    def masked(self) -> bool:
        """True when the kernel hid the addresses (read without CAP_SYS_ADMIN)."""
        every = self.all()
        return bool(every) and all(r.start == 0 and r.end == 0 for r in every)


def parse_iomem(text: str) -> Iomem:
    """Parse /proc/iomem; two spaces of indent per nesting level."""
    top: list[Resource] = []
    stack: list[tuple[int, Resource]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            raise UsageError(f"/proc/iomem line {lineno} is not 'start-end : name': {line!r}")
        depth = len(m.group(1)) // 2
        res = Resource(int(m.group(2), 16), int(m.group(3), 16), m.group(4))
        if res.end < res.start:
            raise UsageError(f"/proc/iomem line {lineno} ends before it starts: {line!r}")
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            stack[-1][1].children.append(res)
        else:
            top.append(res)
        stack.append((depth, res))
    return Iomem(top)


def subtract(ranges: list[Range], holes: list[Range]) -> list[Range]:
    """`ranges` with every address in `holes` removed, sorted, empty pieces dropped."""
    out: list[Range] = []
    for r in sorted(ranges, key=lambda r: r.start):
        pieces = [r]
        for h in holes:
            next_pieces = []
            for p in pieces:
                if h.end < p.start or h.start > p.end:
                    next_pieces.append(p)
                    continue
                if p.start < h.start:
                    next_pieces.append(Range(p.start, h.start - 1))
                if h.end < p.end:
                    next_pieces.append(Range(h.end + 1, p.end))
            pieces = next_pieces
        out.extend(pieces)
    return out
