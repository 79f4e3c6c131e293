"""`analysis.json` beside a dump: the analysis made once and read by `dumps`, `triage`
and monitoring, so that a fleet's dumps are opened only when they are new.

It holds what `analyse --json` prints (docs/analyse-json.md). It is written whole or
not at all (a temporary file renamed), and it is trusted only while it describes the
dump file beside it (its name and size) and its signature has the rules' current
version: a dump analysed under older rules is analysed again.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kdumpctl_py.analyse.signature import VERSION

if TYPE_CHECKING:
    from kdumpctl_py.analyse.model import Report
    from kdumpctl_py.capture.extent import Truncation

NAME = "analysis.json"


def load(vmcore: str) -> dict[str, Any] | None:
    """The stored analysis of this dump file, when it is there and still current."""
    try:
        with open(os.path.join(os.path.dirname(vmcore), NAME), encoding="utf-8") as f:
            data = json.load(f)
        size = os.stat(vmcore).st_size
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("dump_bytes") != size:
        return None
    if os.path.basename(str(data.get("vmcore"))) != os.path.basename(vmcore):
        return None
    sig = data.get("signature")
    if sig is not None and (not isinstance(sig, dict) or sig.get("version") != VERSION):
        return None
    return data


def analyse(vmcore: str, debug_dirs: Sequence[str] | None = None) -> dict[str, Any]:
    """`analyse --json` of the dump: with drgn when it is installed and opens the dump
    (DWARF when a matching vmlinux is found, else kallsyms), else from the kernel log
    alone (analyse/logonly.py), saying why in `warnings`."""
    from kdumpctl_py.analyse import logonly
    from kdumpctl_py.analyse.render import to_json
    from kdumpctl_py.capture.extent import truncation
    from kdumpctl_py.errors import KdumpError

    try:
        import drgn  # noqa: F401
    except ImportError:
        report, cut = logonly.gather(vmcore), truncation(vmcore)
    else:
        try:
            report, cut = _with_drgn(vmcore, debug_dirs)
        except KdumpError as e:
            report, cut = logonly.gather(vmcore), truncation(vmcore)
            report.missing.remove(logonly.MISSING)
            report.warnings.append(f"drgn: {e}; the report is the kernel log's")
        finally:
            # The program is in reference cycles (drgn's types and objects point back at
            # it), which only the cycle collector frees, and it rarely gets to the oldest
            # generation: a `report` or triage worker analysing dump after dump would keep
            # every one's program, its files and debug info (about 225 MB each with DWARF).
            gc.collect()
    if cut is not None:
        report.warnings.append(f"the dump is {cut}; the analysis shows what is there")
    return {**to_json(report), "dump_bytes": os.stat(vmcore).st_size}


def _with_drgn(vmcore: str, debug_dirs: Sequence[str] | None) -> tuple[Report, Truncation | None]:
    """The report of the dump opened by drgn, and how far short the file is (read while
    opening it); the program is the caller's to collect once this returns."""
    from kdumpctl_py.analyse.debuginfo import DEBUG_DIRS
    from kdumpctl_py.analyse.program import open_dump
    from kdumpctl_py.analyse.report import gather

    opened = open_dump(vmcore, None, debug_dirs=tuple(debug_dirs or DEBUG_DIRS))
    return gather(opened), opened.truncation


def store(vmcore: str, data: dict[str, Any]) -> str:
    """Write the analysis beside the dump; returns its path."""
    path = os.path.join(os.path.dirname(vmcore), NAME)
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def load_or_analyse(vmcore: str, debug_dirs: Sequence[str] | None = None
                    ) -> tuple[dict[str, Any], bool]:
    """(analysis, made now): the stored one, or a new one stored beside the dump when the
    directory is writable (a read-only dump server's tree is analysed each time)."""
    data = load(vmcore)
    if data is not None:
        return data, False
    data = analyse(vmcore, debug_dirs)
    try:
        store(vmcore, data)
    except OSError:
        pass
    return data, True
