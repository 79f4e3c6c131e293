"""Save with less and less filtering until a dump is written (`capture`, `save --fallback`).

The attempts, in order: the level asked; the same level keeping the pages of
every section the page filter failed on; zero pages only (-d 1, no struct
page read); a plain ELF copy of the vmcore. A failure of the target itself
(full, read-only, I/O error: TargetError), or an interruption, ends the chain:
the same target would fail again. A dump written with unreadable pages
(IncompleteDump) is the dump: lower levels would meet the same pages.

A failed attempt's directory (a vmcore-incomplete) is deleted once a later
attempt has written the dump, and kept when none does; `save.json` beside the
dump says which, and why each attempt failed. When no attempt wrote a dump
(every step failed, or the target itself did), a `save.json` with `saved`
false still goes into the last attempt's directory, or a new one, if the target
takes anything at all: the crash leaves a trace and `status` says why.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, replace

from kdumpctl_py.capture.dumpdir import INCOMPLETE, TargetError, make_dump_dir
from kdumpctl_py.capture.filter import DL_ZERO, STRUCT_PAGE_LEVELS
from kdumpctl_py.capture.record import Attempt, SaveRecord, write_record
from kdumpctl_py.capture.save import (
    IncompleteDump,
    Interrupted,
    SaveOptions,
    SaveResult,
    save_vmcore,
    sigterm_raises,
)
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.journal import warn


@dataclass(frozen=True)
class Step:
    how: str
    options: SaveOptions | None  # None: the plain copy


def plan_steps(options: SaveOptions) -> list[Step]:
    """The attempts for `options`, most filtering first."""
    level = options.dump_level
    steps = [Step(f"at -d {level}", options)]
    if level & STRUCT_PAGE_LEVELS:
        steps.append(Step(f"at -d {level} keeping what the page filter failed on",
                          replace(options, tolerant=True)))
        zero = level & DL_ZERO
        steps.append(Step(f"at -d {zero} without struct pages",
                          replace(options, dump_level=zero, struct_pages=False)))
    steps.append(Step("as a plain copy", None))
    return steps


class SaveFailed(KdumpError):
    """No attempt wrote a dump; the record of each is in `failed`."""

    def __init__(self, message: str, failed: list[Attempt]) -> None:
        super().__init__(message)
        self.failed = failed


def save_with_fallback(vmcore: str, target: str, options: SaveOptions,
                       earlier: tuple[Attempt, ...] = ()) -> tuple[SaveResult, SaveRecord]:
    """Save through the steps; write save.json beside the dump that was written, or
    beside what the failed attempts left when none wrote one. `earlier`: what failed
    before these steps (capture's dump_to_rootfs: the target), recorded first."""
    from kdumpctl_py.capture.copy import copy_vmcore

    started = time.monotonic()
    failed: list[Attempt] = list(earlier)
    with sigterm_raises():  # between the attempts too, as within each
        for step in plan_steps(options):
            made: list[str] = []  # the attempt's own directory, whatever else the target gets
            try:
                if step.options is None:
                    result = copy_vmcore(vmcore, target, options.firmware, made)
                else:
                    result = save_vmcore(vmcore, target, step.options, made=made)
            except IncompleteDump as e:
                result = e.result
            except (TargetError, Interrupted, KeyboardInterrupt) as e:
                _note_failed(failed, step, e, made)
                record_failure(vmcore, target, options, failed, time.monotonic() - started)
                raise
            except Exception as e:  # noqa: BLE001 - whatever broke, try with less filtering
                _note_failed(failed, step, e, made)
                warn(f"saving {step.how} failed: {failed[-1].error}")
                continue
            break
        else:
            where = record_failure(vmcore, target, options, failed, time.monotonic() - started)
            raise SaveFailed("no dump could be written: " + "; ".join(
                f"{a.how}: {a.error}" for a in failed)
                + (f" (recorded in {where})" if where else ""), failed)
    _remove_left(failed)
    record = _record(options, step, result, failed, time.monotonic() - started)
    if result.directory:
        try:
            write_record(result.directory, record)
        except OSError as e:
            warn(f"cannot write {result.directory}/save.json: {e}")
    return result, record


def record_failure(vmcore: str, target: str, options: SaveOptions, failed: list[Attempt],
                   seconds: float) -> str | None:
    """Write save.json saying why no dump was written; its path, or None when the target
    takes nothing (said on stderr, which the capture service's journal keeps)."""
    from kdumpctl_py.capture.copy import directory_name, parsed

    kept = [a.directory for a in failed if a.directory and os.path.isdir(a.directory)]
    try:
        if kept:
            directory = kept[-1]
        else:
            v = parsed(vmcore)
            name = directory_name(v)
            if v is not None:
                v.close()
            directory, fd = make_dump_dir(target, name)
            os.close(fd)
        left = [n for n in INCOMPLETE if os.path.exists(os.path.join(directory, n))]
        size = os.path.getsize(os.path.join(directory, left[0])) if left else 0
        write_record(directory, SaveRecord(
            options.dump_level, None, "not saved", "none", "none", False, round(seconds, 3),
            size, left[0] if left else "", failed, saved=False))
    except (OSError, KdumpError) as e:
        warn(f"no dump was saved, and no record of why could be written under {target}: {e}")
        return None
    path = os.path.join(directory, "save.json")
    warn(f"no dump was saved; {path} says why")
    return path


def _remove_left(failed: list[Attempt]) -> None:
    """Delete what the failed attempts left, once a dump is saved; `removed` says whether
    each directory is gone (rmtree ignores its errors: what stays is only clutter)."""
    for attempt in failed:
        if attempt.directory:
            shutil.rmtree(attempt.directory, ignore_errors=True)
            attempt.removed = not os.path.lexists(attempt.directory)
            if not attempt.removed:
                warn(f"cannot remove {attempt.directory}, left by saving {attempt.how}")


def _note_failed(failed: list[Attempt], step: Step, error: BaseException,
                 made: list[str]) -> None:
    """Note the failed attempt and the directory it made, if any: that one by name, never
    one a listing of the target finds new (another save may be writing there)."""
    text = str(error) if isinstance(error, (KdumpError, OSError)) else \
        f"{type(error).__name__}: {error}"
    level = step.options.dump_level if step.options else None
    failed.append(Attempt(step.how, level, text, made[-1] if made else None))


def _record(options: SaveOptions, step: Step, result: SaveResult, failed: list[Attempt],
            seconds: float) -> SaveRecord:
    if step.options is None:
        fmt, level, compress = "copy", None, "none"
    else:
        fmt = "flat" if options.flat else options.format
        level = result.dump_level
        compress = options.compress if options.format == "kdump" else "none"
    vmcore = result.vmcore if result.complete else f"{result.vmcore}-incomplete"
    return SaveRecord(options.dump_level, level, step.how, fmt, compress, result.complete,
                      round(seconds, 3), result.bytes_out, vmcore, failed,
                      list(result.stats.warnings))
