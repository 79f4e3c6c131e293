"""Symbol sizes as the kernel and crash count them: the distance to the next symbol.

ELF's st_size ends at a function's last instruction, but the kernel's own
traces (`vfs_write+0xdc/0x3b0`), kallsyms and crash count a symbol as
reaching the next symbol's address, alignment padding included. The sizes
here are that distance, so our backtraces read like the log's Call Trace.
Symbols kallsyms leaves out (scripts/kallsyms.c: arm's `$x`/`$d` mapping
symbols, `.L` locals, nameless section symbols) do not end a symbol.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import drgn

IGNORED_PREFIXES = ("$", ".L", "__crc_", "__kstrtab")
# A next symbol further than this past st_size is not the neighbour in the same section
# (the last function of a text section, where the kernel stops at the section's end).
MAX_PADDING = 4096


@functools.lru_cache(maxsize=4)
def _addresses(prog: drgn.Program) -> npt.NDArray[np.uint64]:
    """Sorted, distinct start addresses of the symbols kallsyms would hold."""
    return np.unique(np.fromiter(
        (s.address for s in prog.symbols()
         if s.name and not s.name.startswith(IGNORED_PREFIXES)), dtype=np.uint64))


def kernel_size(prog: drgn.Program, sym: drgn.Symbol) -> int:
    """The size the kernel prints after the slash in func+off/size."""
    addresses = _addresses(prog)
    i = int(np.searchsorted(addresses, np.uint64(sym.address), side="right"))
    if i < len(addresses):
        distance = int(addresses[i]) - int(sym.address)
        if sym.size <= distance <= sym.size + MAX_PADDING:
            return distance
    return int(sym.size)
