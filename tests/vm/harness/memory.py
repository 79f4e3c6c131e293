"""The capture kernel's memory at each stage, read from its console.

The kernel's own line (`Memory: A/B available ... reserved`) gives what is left
after its image and early allocations; /init's `memstat` lines (guestinit.py)
give /proc/meminfo after the initramfs is unpacked, while Python holds what
`save` imports (with its peak RSS), and after the save (with the save's peak
RSS and the lowest MemFree/MemAvailable seen while it ran). Read from the
console, so a capture kernel that fails still leaves its figures.
"""

from __future__ import annotations

import re
from typing import Any

MEM_MARKER = b"KDUMPCTL-VM-MEM:"
_KERNEL = re.compile(rb"Memory: (\d+)K/(\d+)K available .*?(\d+)K reserved, (\d+)K cma-reserved")
_INITRD_FREED = re.compile(rb"Freeing initrd memory: (\d+)K")
_LINE = re.compile(rb"KDUMPCTL-VM-MEM: (\S+)((?: \S+=[\d.]+)*)")
# Columns of the table: label, then keys in kB unless named otherwise.


def parse(console: bytes) -> dict[str, Any]:
    """{"kernel": {...}, "stages": {label: {key: number}}} from a capture console log."""
    out: dict[str, Any] = {"kernel": {}, "stages": {}}
    m = _KERNEL.search(console)
    if m:
        out["kernel"] = {"available_kb": int(m.group(1)), "total_kb": int(m.group(2)),
                         "reserved_kb": int(m.group(3)), "cma_kb": int(m.group(4))}
    m = _INITRD_FREED.search(console)
    if m:
        out["kernel"]["initrd_freed_kb"] = int(m.group(1))
    for m in _LINE.finditer(console):
        values: dict[str, float] = {}
        for pair in m.group(2).split():
            key, _, value = pair.decode().partition("=")
            values[key] = float(value) if "." in value else int(value)
        out["stages"][m.group(1).decode()] = values
    return out


def table(mem: dict[str, Any]) -> list[str]:
    """The figures as text lines, MiB, for the log and the README."""
    lines = []
    k = mem.get("kernel", {})
    if k:
        lines.append(f"kernel init: {k['total_kb'] / 1024:.1f} MiB reserved memory, "
                     f"{k['available_kb'] / 1024:.1f} MiB available (initramfs freed after "
                     f"unpacking: {k.get('initrd_freed_kb', 0) / 1024:.1f} MiB)")
    lines.append("stage      MemTotal MemFree MemAvail   Shmem   VmHWM RssAnon     s "
                 "minFree minAvail (MiB)")
    for label, v in mem.get("stages", {}).items():
        cells = [v.get(k) for k in ("MemTotal", "MemFree", "MemAvailable", "Shmem", "VmHWM_kb",
                                    "RssAnon_kb")]
        text = " ".join(f"{c / 1024:7.1f}" if isinstance(c, int) else "      -" for c in cells)
        seconds = v.get("seconds")
        text += f" {seconds:5.1f}" if seconds is not None else "     -"
        for key in ("min_free_kb", "min_available_kb"):
            c = v.get(key)
            text += f" {c / 1024:7.1f}" if isinstance(c, int) else "       -"
        lines.append(f"{label:10s} {text}")
    return lines
