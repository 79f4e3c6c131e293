"""The memory summary of crash's `kmem -i`, from vm_stat counters and totalram_pages.

The same sums as crash and drgn's own `kmem -i`: used = total - free;
cached = NR_FILE_PAGES - swap cache - buffers; slab = reclaimable +
unreclaimable slab pages. Each figure is read on its own, so a kernel that
lacks one (no swap, no hugetlbfs) still gives the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kdumpctl_py.analyse.model import Memory

if TYPE_CHECKING:
    import drgn


def _try(fn: Callable[[], int]) -> int | None:
    try:
        return int(fn())
    except Exception:  # noqa: BLE001 - a figure the kernel (or this drgn) lacks is left out
        return None


def read(prog: drgn.Program) -> Memory:
    # Each helper is imported where it is used: older drgn releases lack some of them
    # (hugetlb and swap came later than mm and vmstat), and the rest still count.
    from drgn.helpers.linux.mm import totalram_pages
    from drgn.helpers.linux.vmstat import global_node_page_state, nr_free_pages

    def buffers_() -> int:
        from drgn.helpers.linux.block import nr_blockdev_pages

        return nr_blockdev_pages(prog)

    def swapcache() -> int:
        from drgn.helpers.linux.swap import total_swapcache_pages

        return total_swapcache_pages(prog)

    def slab() -> int:
        from drgn.helpers.linux.slab import slab_total_usage

        return slab_total_usage(prog).total_pages

    def huge(attr: str) -> int:
        from drgn.helpers.linux.hugetlb import hugetlb_total_usage

        return int(getattr(hugetlb_total_usage(prog), attr))

    def swap(attr: str) -> int:
        from drgn.helpers.linux.swap import swap_total_usage

        return int(getattr(swap_total_usage(prog), attr))

    def commit(name: str) -> int:
        from drgn.helpers.linux import mm

        return int(getattr(mm, name)(prog))

    total = totalram_pages(prog)
    free = _try(lambda: nr_free_pages(prog))
    buffers = _try(buffers_)
    file_pages = _try(lambda: global_node_page_state(prog, prog["NR_FILE_PAGES"]))
    cached = None
    if file_pages is not None:
        cached = max(0, file_pages - (_try(swapcache) or 0) - (buffers or 0))
    return Memory(
        page_size=prog["PAGE_SIZE"].value_(),
        total=total,
        free=free,
        used=None if free is None else total - free,
        buffers=buffers,
        cached=cached,
        slab=_try(slab),
        huge_total=_try(lambda: huge("pages")),
        huge_free=_try(lambda: huge("free_pages")),
        swap_total=_try(lambda: swap("pages")),
        swap_free=_try(lambda: swap("free_pages")),
        commit_limit=_try(lambda: commit("vm_commit_limit")),
        committed=_try(lambda: commit("vm_memory_committed")),
    )
