"""Keep the newest N dumps under a directory; never delete an incomplete one.

A dump is a directory named `<host>-YYYY-MM-DD-HH:MM:SS` (with `-N` when two
crashes shared a second), as `save` names them, holding `vmcore` or
`vmcore.flat` (complete) or `vmcore-incomplete` / `vmcore.flat-incomplete`; a
complete name whose file or save.json says otherwise (`said_incomplete`) is incomplete.
Only complete dumps count towards N and only they are deleted, oldest first by
the time in the name. Incomplete dumps are always kept and reported: deleting
one silently would hide the only trace of a failed capture. Directories that do
not look like dumps are never touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from kdumpctl_py.capture.dumpdir import COMPLETE, INCOMPLETE, NAME_RE, name_order
from kdumpctl_py.capture.record import read_record, said_incomplete


@dataclass(frozen=True)
class Dump:
    name: str
    complete: bool
    order: tuple[str, int]  # (time in the name, -N suffix)


@dataclass
class Retention:
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)


def scan(directory: str) -> list[Dump]:
    """The dumps under `directory`, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    entries = {}
    for name in names:
        path = os.path.join(directory, name)
        if NAME_RE.match(name) and not os.path.islink(path) and os.path.isdir(path):
            entries[name] = set(os.listdir(path))
    return dumps_in(entries, lambda name: _said_incomplete(os.path.join(directory, name),
                                                           entries[name]))


def _said_incomplete(path: str, files: set[str]) -> bool:
    vmcore = next(n for n in COMPLETE if n in files)
    return said_incomplete(read_record(path), os.path.join(path, vmcore))


def dumps_in(entries: dict[str, set[str]],
             said_incomplete: Callable[[str], bool]) -> list[Dump]:
    """The dumps among directories (name: the names inside it), oldest first; names that
    are not dump names and directories without a vmcore are left out. A dump named
    complete is not when `said_incomplete(name)` (its save.json or header says so)."""
    dumps = []
    for name, files in entries.items():
        m = NAME_RE.match(name)
        if not m:
            continue
        if files & set(COMPLETE):
            complete = not said_incomplete(name)
        elif files & set(INCOMPLETE):
            complete = False
        else:
            continue
        dumps.append(Dump(name, complete, name_order(name)))
    return sorted(dumps, key=lambda d: d.order)


def plan(dumps: list[Dump], keep: int, saved: str | None = None) -> Retention:
    """Which complete dumps go (all but the newest `keep`; keep 0 means all stay). The
    dump just `saved` stays and counts first, whatever its name says of its time: a
    crashed kernel whose clock was wrong (an RTC reset, a crash before NTP) names it
    older than the dumps before it."""
    complete = [d.name for d in dumps if d.complete and d.name != saved]
    out = Retention(incomplete=[d.name for d in dumps if not d.complete])
    mine = [saved] if saved in {d.name for d in dumps if d.complete} else []
    cut = max(len(complete) + len(mine) - keep, 0) if keep else 0
    out.deleted, out.kept = complete[:cut], [*complete[cut:], *mine]
    return out


def apply(directory: str, keep: int, saved: str | None = None) -> Retention:
    import shutil  # here: it loads the bz2 and lzma libraries, which only keep needs

    result = plan(scan(directory), keep, saved)
    for name in result.deleted:
        shutil.rmtree(os.path.join(directory, name))
    return result
