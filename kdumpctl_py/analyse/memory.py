"""The memory summary of crash's `kmem -i`, from vm_stat counters and totalram_pages.

The same sums as crash and drgn's own `kmem -i`: used = total - free;
cached = NR_FILE_PAGES - swap cache - buffers; slab = reclaimable +
unreclaimable slab pages. Each figure is read on its own, so a kernel that
lacks one (no swap, no hugetlbfs) still gives the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kdumpctl_py.analyse.report import Memory

if TYPE_CHECKING:
    import drgn


def _try(fn: Callable[[], int]) -> int | None:
    try:
        return int(fn())
    except Exception:  # noqa: BLE001 - a figure the kernel does not have is left out
        return None


def read(prog: drgn.Program) -> Memory:
    from drgn.helpers.linux.block import nr_blockdev_pages
    from drgn.helpers.linux.hugetlb import hugetlb_total_usage
    from drgn.helpers.linux.mm import totalram_pages, vm_commit_limit, vm_memory_committed
    from drgn.helpers.linux.slab import slab_total_usage
    from drgn.helpers.linux.swap import swap_total_usage, total_swapcache_pages
    from drgn.helpers.linux.vmstat import global_node_page_state, nr_free_pages

    total = totalram_pages(prog)
    free = _try(lambda: nr_free_pages(prog))
    buffers = _try(lambda: nr_blockdev_pages(prog))
    file_pages = _try(lambda: global_node_page_state(prog, prog["NR_FILE_PAGES"]))
    swapcache = _try(lambda: total_swapcache_pages(prog)) or 0
    cached = None
    if file_pages is not None:
        cached = max(0, file_pages - swapcache - (buffers or 0))
    huge = None
    try:
        huge = hugetlb_total_usage(prog)
    except Exception:  # noqa: BLE001 - no hugetlbfs
        pass
    swap = None
    try:
        swap = swap_total_usage(prog)
    except Exception:  # noqa: BLE001
        pass
    return Memory(
        page_size=prog["PAGE_SIZE"].value_(),
        total=total,
        free=free,
        used=None if free is None else total - free,
        buffers=buffers,
        cached=cached,
        slab=_try(lambda: slab_total_usage(prog).total_pages),
        huge_total=None if huge is None else huge.pages,
        huge_free=None if huge is None else huge.free_pages,
        swap_total=None if swap is None else swap.pages,
        swap_free=None if swap is None else swap.free_pages,
        commit_limit=_try(lambda: vm_commit_limit(prog)),
        committed=_try(lambda: vm_memory_committed(prog)),
    )
