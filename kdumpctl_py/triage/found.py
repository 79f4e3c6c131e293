"""The dumps under directories: a local target, or a dump server's tree of many hosts.

A dump is a directory holding a vmcore as `save` and `capture` leave it (`vmcore`,
`vmcore.flat`, or either with `-incomplete`), complete only when neither its name, its
header nor its save.json says otherwise. Its host and time come from its name,
`<host>-YYYY-MM-DD-HH:MM:SS[-N]` (service/retention.py); a directory named otherwise
(a copy made by hand) takes the host the analysis found and the file's time. Trees
are walked without following links to directories, and a dump's own directory is not
searched further.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kdumpctl_py.capture.dumpdir import COMPLETE, INCOMPLETE, NAME_RE
from kdumpctl_py.capture.record import said_incomplete

VMCORES = (*COMPLETE, *INCOMPLETE)  # in order of preference when several are there


@dataclass(frozen=True)
class Dump:
    directory: str
    vmcore: str  # path of the dump file
    host: str | None
    date: str  # ISO 8601, to the second: from the name, else the file's modification time
    complete: bool
    bytes: int
    save: dict[str, Any] | None  # its save.json


def name_parts(name: str) -> tuple[str | None, str] | None:
    """(host, ISO date) of a dump directory named as `save` names them."""
    m = NAME_RE.match(name)
    if not m:
        return None
    day, _, time = m.group(1).rpartition("-")
    return name[:m.start(1) - 1], f"{day}T{time}"


def dump_in(directory: str, files: Iterable[str]) -> Dump | None:
    from kdumpctl_py.capture.record import read_record

    present = set(files)
    name = next((v for v in VMCORES if v in present), None)
    if name is None:
        return None
    path = os.path.join(directory, name)
    try:
        st = os.stat(path)
    except OSError:
        return None
    parts = name_parts(os.path.basename(os.path.normpath(directory)))
    host, date = parts if parts else (None, dt.datetime.fromtimestamp(
        st.st_mtime, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    record = read_record(directory)
    complete = name in COMPLETE and not said_incomplete(record, path)
    return Dump(directory, path, host, date, complete, st.st_size, record)


def find(roots: Iterable[str]) -> list[Dump]:
    """Every dump under the roots, newest first; a root that is not a directory is an
    error (a mistyped path must not read as "no dumps")."""
    from kdumpctl_py.errors import UsageError

    out: dict[str, Dump] = {}
    for root in roots:
        if not os.path.isdir(root):
            wrong = "is not a directory" if os.path.lexists(root) else "does not exist"
            raise UsageError(f"{root} {wrong}; name a directory of dumps")
        for directory, dirs, files in os.walk(root, onerror=_root_unreadable(root)):
            dump = dump_in(directory, files)
            if dump is not None:
                out[os.path.realpath(directory)] = dump
                dirs.clear()
            else:
                dirs.sort()
    return sorted(out.values(), key=lambda d: (d.date, d.directory), reverse=True)


def _root_unreadable(root: str) -> Callable[[OSError], None]:
    """os.walk's onerror: a root it cannot list is raised (its dumps are not "none"); a
    directory below it this user cannot read (a file system's lost+found) is passed over."""
    def onerror(e: OSError) -> None:
        if e.filename == root:
            raise e

    return onerror
