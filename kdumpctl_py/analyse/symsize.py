"""Symbol sizes as the kernel and crash count them: the distance to the next symbol.

ELF's st_size ends at a function's last instruction, but the kernel's own
traces (`vfs_write+0xdc/0x3b0`), kallsyms and crash count a symbol as
reaching the next symbol's address, alignment padding included. The sizes
here are that distance, so our backtraces read like the log's Call Trace.
Symbols kallsyms leaves out (scripts/kallsyms.c: arm's `$x`/`$d` mapping
symbols, `.L` locals, section, file and absolute symbols) do not end a symbol.

The start addresses come straight from the vmlinux's .symtab as one numpy
array (a few milliseconds), not from drgn's 200,000 Symbol objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import drgn

ELF64_SYM = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"),
                      ("value", "<u8"), ("size", "<u8")])
STT_SECTION, STT_FILE = 3, 4
SHN_UNDEF, SHN_ABS = 0, 0xFFF1
# A next symbol further than this past st_size is not the neighbour in the same section
# (the last function of a text section, where the kernel stops at the section's end).
MAX_PADDING = 4096
CACHE_KEY = "kdumpctl_py.symbol_starts"  # in drgn.Program.cache, which is for helpers


def _symtab_starts(path: str) -> npt.NDArray[np.uint64]:
    """Sorted start addresses (as linked) of the symbols of `path` that kallsyms would hold."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None or elf.elfclass != 64 or not elf.little_endian:
            return np.zeros(0, np.uint64)
        strtab = elf.get_section(symtab["sh_link"])
        f.seek(symtab["sh_offset"])
        syms = np.frombuffer(f.read(symtab["sh_size"]), ELF64_SYM)
        f.seek(strtab["sh_offset"])
        names = np.frombuffer(f.read(strtab["sh_size"]) + b"\0\0", np.uint8)
    first, second = names[syms["name"]], names[syms["name"] + 1]
    kind = syms["info"] & 0xF
    keep = ((syms["name"] != 0) & (kind != STT_SECTION) & (kind != STT_FILE)
            & (syms["shndx"] != SHN_UNDEF) & (syms["shndx"] != SHN_ABS)
            & (first != ord("$")) & ~((first == ord(".")) & (second == ord("L"))))
    return np.unique(syms["value"][keep])


def _starts(prog: drgn.Program) -> tuple[npt.NDArray[np.uint64], int]:
    """The kernel's symbol starts and the bias that relocates them (KASLR), or none; read
    once per program and kept in its own cache, which goes with it (a cache of ours keyed
    by the program would keep each program, its files and its debug info, alive: 225 MB
    an arm64 dump with DWARF, in a `report` that analyses one dump after another)."""
    cached: tuple[npt.NDArray[np.uint64], int] | None = prog.cache.get(CACHE_KEY)
    if cached is None:
        cached = prog.cache[CACHE_KEY] = _read_starts(prog)
    return cached


def _read_starts(prog: drgn.Program) -> tuple[npt.NDArray[np.uint64], int]:
    try:
        module = prog.main_module()
        path, bias = module.debug_file_path, module.debug_file_bias
    except (LookupError, AttributeError):
        return np.zeros(0, np.uint64), 0
    if path is None or bias is None:
        return np.zeros(0, np.uint64), 0
    try:
        return _symtab_starts(path), int(bias)
    except (OSError, ValueError):
        return np.zeros(0, np.uint64), 0


def kernel_size(prog: drgn.Program, sym: drgn.Symbol) -> int:
    """The size the kernel prints after the slash in func+off/size."""
    size = int(sym.size)
    starts, bias = _starts(prog)
    linked = (int(sym.address) - bias) % (1 << 64)
    i = int(np.searchsorted(starts, np.uint64(linked), side="right"))
    if i < len(starts):
        distance = int(starts[i]) - linked
        if size <= distance <= size + MAX_PADDING:
            return distance
    return size
