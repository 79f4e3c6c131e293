"""Taint flags: the letters the kernel prints after "Tainted:", and what each means.

The table is Documentation/admin-guide/tainted-kernels.rst (bit, letter,
meaning); the letters are positional, one per bit, blank when clear ("G" in
bit 0's place when no proprietary module is loaded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdumpctl_py.analyse.model import Taint

if TYPE_CHECKING:
    import drgn

FLAGS: tuple[tuple[str, str], ...] = (
    ("P", "proprietary module was loaded"),
    ("F", "module was force loaded"),
    ("S", "kernel running on an out of specification system"),
    ("R", "module was force unloaded"),
    ("M", "processor reported a Machine Check Exception"),
    ("B", "bad page referenced or some unexpected page flags"),
    ("U", "taint requested by userspace application"),
    ("D", "kernel died recently, i.e. there was an OOPS or BUG"),
    ("A", "an ACPI table was overridden by user"),
    ("W", "kernel issued warning"),
    ("C", "staging driver was loaded"),
    ("I", "workaround for bug in platform firmware applied"),
    ("O", "externally-built (\"out-of-tree\") module was loaded"),
    ("E", "unsigned module was loaded"),
    ("L", "soft lockup occurred"),
    ("K", "kernel has been live patched"),
    ("X", "auxiliary taint, defined for and used by distros"),
    ("T", "kernel was built with the struct randomization plugin"),
    ("N", "an in-kernel test has been run"),
    ("J", "userspace used a mutating debug operation in fwctl"),
)
_BY_LETTER = {letter: meaning for letter, meaning in FLAGS}


def meanings(flags: str) -> list[str]:
    """"LETTER: meaning" for each set flag in a positional taint string."""
    out = []
    for i, c in enumerate(flags):
        if c in (" ", "G", "-"):
            continue
        if i < len(FLAGS) and FLAGS[i][0] == c:
            out.append(f"{c}: {FLAGS[i][1]}")
        else:
            out.append(f"{c}: {_BY_LETTER.get(c, 'unknown taint flag')}")
    return out


def from_letters(flags: str, mask: int | None = None) -> Taint:
    flags = flags.rstrip()
    if mask == 0 or not flags.strip(" G"):
        return Taint("", mask, [])
    return Taint(flags, mask, meanings(flags))


def read(prog: drgn.Program) -> Taint:
    from drgn.helpers.linux.panic import tainted

    return from_letters(tainted(prog), prog["tainted_mask"].value_())
