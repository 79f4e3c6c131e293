"""How large the next dump may be, from the first kernel's /proc/meminfo.

The pages the dump level keeps, before compression: free pages (16), page
cache and buffers but shared memory (2, 4: shmem is page cache that the
filter cannot drop as such) and anonymous user pages (8) are left out; zero
pages (1) cannot be told from here and count as kept. Compression makes the
file smaller, so this is what the target should have room for to be sure,
as Fedora's kdumpctl asks for the whole of MemTotal.
"""

from __future__ import annotations


def dump_size_estimate(meminfo: dict[str, int], dump_level: int) -> int | None:
    """Bytes of the pages kept at `dump_level`; None without MemTotal."""
    from kdumpctl_py.capture.filter import DL_CACHE, DL_CACHE_PRIVATE, DL_FREE, DL_USER

    total = meminfo.get("MemTotal")
    if total is None:
        return None
    left_out = 0
    if dump_level & DL_FREE:
        left_out += meminfo.get("MemFree", 0)
    if dump_level & (DL_CACHE | DL_CACHE_PRIVATE):
        left_out += max(0, meminfo.get("Cached", 0) - meminfo.get("Shmem", 0)) \
            + meminfo.get("Buffers", 0)
    if dump_level & DL_USER:
        left_out += meminfo.get("AnonPages", 0)
    return max(0, total - left_out)
