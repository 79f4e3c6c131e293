"""How much memory saving may use, and the filter window that fits in it.

The capture kernel has a few hundred MiB and a dump can describe a TiB, so
nothing that saving holds may grow with the dump: the bitmaps are decided
one window of pages at a time (makedumpfile's cyclic mode) and kept packed
and compressed, and the window is what the budget sizes. What does not
depend on the window is counted first: the interpreter with numpy and
kdumpctl-py, the chunks in flight (two per compression thread, each read
buffer with its compressed copy, CHUNK_BYTES whatever the page size, so
arm64's 64K pages cost the same) and one block of struct pages with its
numpy temporaries. The default budget is half of MemAvailable, but never
below what a save needs with a small window (MIN_LIMIT): the interpreter
alone takes most of that, and less would only make the budget a lie.
"""

from __future__ import annotations

from kdumpctl_py.units import MiB

# Python, numpy and kdumpctl-py imported: 31 MB on a Debian 12 host, about 3 MB more with
# Debian's packages in the capture initramfs (16 GiB crash cycle: 48.8 MiB at the peak
# with a window of 2^18 pages, 36.5 MiB with 2^16)
BASELINE = 36 * MiB
CHUNK_BYTES = 1 * MiB  # page data per compression task
STRUCT_BLOCK_BYTES = 4 * MiB  # a block of struct pages and the filter's temporaries
CHUNKS_PER_THREAD_BYTES = 2 * 2 * CHUNK_BYTES  # two in flight, each read and compressed
WINDOW_BYTES_PER_PAGE = 24  # the filter's and the writer's arrays per page of a window
SECTION_WINDOW_BYTES = (1 << 15) * WINDOW_BYTES_PER_PAGE  # x86_64's 128 MiB of 4K pages
# More buys nothing but memory: windows of 256 MiB of 4K pages saved a 64 GiB synthetic
# vmcore in the same CPU time as windows of 1 GiB, with 3 MB less at the peak.
MAX_WINDOW_PAGES = 1 << 16
DEFAULT_LIMIT = 256 * MiB  # when MemAvailable is not known
DEFAULT_SHARE = 2  # the default is MemAvailable / DEFAULT_SHARE
MIN_LIMIT = 56 * MiB  # the fixed costs, a whole window and some room


def default_limit(meminfo: dict[str, int]) -> int:
    """The budget when none is given: half of what the kernel says is available."""
    available = meminfo.get("MemAvailable")
    return max(available // DEFAULT_SHARE, MIN_LIMIT) if available else DEFAULT_LIMIT


def chunk_pages(page_size: int) -> int:
    return max(1, CHUNK_BYTES // page_size)


def threads_within(limit: int, threads: int) -> int:
    """The compression threads, of `threads`, whose chunks in flight fit `limit` beside the
    fixed costs and a window of one section (always one thread: the saver's own)."""
    room = limit - BASELINE - STRUCT_BLOCK_BYTES - SECTION_WINDOW_BYTES
    return max(1, min(threads, room // CHUNKS_PER_THREAD_BYTES))


def window_pages(limit: int, threads: int) -> int:
    """Pages per filter window under `limit` bytes with `threads` compression threads; the
    filter rounds it to whole sections, so a budget too small still gets one section."""
    fixed = BASELINE + STRUCT_BLOCK_BYTES + threads * CHUNKS_PER_THREAD_BYTES
    return max(1, min(MAX_WINDOW_PAGES, (limit - fixed) // WINDOW_BYTES_PER_PAGE))
