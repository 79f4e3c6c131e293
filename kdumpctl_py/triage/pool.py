"""Analyse many dumps at once: stored analyses are read, the others made in parallel.

Each analysis runs in its own process (drgn holds the GIL while it reads a dump, and a
dump that crashes or exhausts a worker must not take the others with it); results are
stored beside each dump (analyse/stored.py) for the next run. The progress goes to a
terminal as one redrawn line, and nowhere else.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from kdumpctl_py.triage.found import Dump
from kdumpctl_py.triage.groups import Analysed

BAR = 30


def analyse_one(vmcore: str, debug_dirs: Sequence[str] | None = None
                ) -> tuple[dict[str, Any] | None, str | None]:
    """(analysis, None) or (None, the error in one line); never raises."""
    from kdumpctl_py.analyse.stored import load_or_analyse
    from kdumpctl_py.errors import KdumpError

    try:
        return load_or_analyse(vmcore, debug_dirs)[0], None
    except (KdumpError, OSError) as e:  # said for people already, as analyse says it
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - one bad dump is reported, the rest go on
        return None, f"internal error: {type(e).__name__}: {e}"


def progress_line(done: int, total: int) -> str:
    filled = BAR * done // total if total else BAR
    return f"\ranalysing dumps [{'#' * filled}{'.' * (BAR - filled)}] {done}/{total}"


def analyse_all(dumps: Sequence[Dump], jobs: int | None = None,
                debug_dirs: Sequence[str] | None = None,
                progress: TextIO | None = None) -> list[Analysed]:
    """Every dump with its analysis, in the order given; `jobs` processes at most
    (default: one per CPU), none for dumps whose stored analysis is current."""
    from kdumpctl_py.analyse.stored import load

    results: dict[int, Analysed] = {}
    todo = []
    for i, d in enumerate(dumps):
        stored = load(d.vmcore)
        if stored is not None:
            results[i] = Analysed(d, stored)
        else:
            todo.append(i)
    show: Callable[[int], None] = (lambda _n: None) if progress is None else (
        lambda n: print(progress_line(n, len(todo)), end="", file=progress, flush=True))
    if todo:
        show(0)
        workers = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(analyse_one, dumps[i].vmcore, debug_dirs): i for i in todo}
            for n, fut in enumerate(cf.as_completed(futures), 1):
                i = futures[fut]
                try:
                    data, error = fut.result()
                except cf.process.BrokenProcessPool as e:
                    data, error = None, f"the analysing process died: {e}"
                results[i] = Analysed(dumps[i], data, error)
                show(n)
        if progress is not None:
            print(file=progress)
    return [results[i] for i in range(len(dumps))]


def terminal() -> TextIO | None:
    """stderr when it is a terminal: where a progress bar may go."""
    return sys.stderr if sys.stderr.isatty() else None
