"""`save.json`: what saving a dump did, beside the vmcore, for people and for `status`/`analyse`.

The record says the level asked and the level written, the format, every
attempt that failed before the one that wrote the dump and why, and what
became of each failed attempt's directory; `summary` turns it into the one
line that `status`, the journal and `analyse` print. When no attempt wrote a
dump, a record with `saved` false still says why, in the directory the last
attempt left (or a new one), so the target keeps a trace of the crash.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from kdumpctl_py.fileio import replace_atomically

NAME = "save.json"
SCHEMA = 1


@dataclass
class Attempt:
    """One try at saving that did not write the dump."""

    how: str  # "at -d 31", "at -d 31 keeping what the filter failed on", "at -d 1", ...
    dump_level: int | None  # None for the plain copy
    error: str
    directory: str | None = None  # what it left behind, if anything
    removed: bool = False  # that directory was deleted once a later attempt wrote the dump


@dataclass
class SaveRecord:
    level_asked: int
    level_written: int | None  # None: a plain ELF copy of the vmcore, nothing filtered
    how: str
    format: str  # kdump, elf, flat or copy
    compress: str
    complete: bool
    seconds: float
    bytes: int
    vmcore: str
    failed: list[Attempt] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    schema: int = SCHEMA
    saved: bool = True  # False: no attempt wrote a dump; `failed` says why

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def summary(rec: dict[str, Any]) -> str:
    """One line: how the dump was saved, and why not as asked."""
    failed = rec.get("failed") or []
    if rec.get("saved") is False:
        return "no dump saved: " + "; ".join(
            f"{a.get('how', '')} failed: {a.get('error')}" for a in failed)
    level = rec.get("level_written")
    done = "copied whole (no filtering)" if level is None else f"saved at -d {level}"
    if not rec.get("complete", True):
        done += ", INCOMPLETE"
    if failed:
        first = failed[0]
        return f"{done} after saving {first.get('how', '')} failed: {first.get('error')}"
    warnings = rec.get("warnings") or []
    if warnings:
        return f"{done}: {warnings[0]}"
    return done


def read_record(directory: str) -> dict[str, Any] | None:
    """The record of the dump in `directory`; None when there is none or it is unreadable."""
    try:
        with open(os.path.join(directory, NAME), "rb") as f:
            return parse_record(f.read())
    except OSError:
        return None


def parse_record(data: bytes) -> dict[str, Any] | None:
    """A record from a save.json's bytes (read here, or over ssh); None when it is not one."""
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        return None
    return record if isinstance(record, dict) else None


def record_says_incomplete(record: dict[str, Any] | None) -> bool:
    """save.json says the dump is not whole: `complete` or `saved` false."""
    record = record or {}
    return record.get("complete") is False or record.get("saved") is False


def said_incomplete(record: dict[str, Any] | None, vmcore: str) -> bool:
    """A dump named complete that says it is not: its save.json (`record`), or the
    kdump-compressed or ELF header of the file `vmcore` still marked unfinished. Never a
    page is read."""
    from kdumpctl_py.capture.kdumpfile import marked_incomplete

    return record_says_incomplete(record) or marked_incomplete(vmcore)


def write_record(directory: str, rec: SaveRecord) -> None:
    """Written whole or not at all, nothing left behind when it fails (a full disk)."""
    replace_atomically(os.path.join(directory, NAME), rec.to_json().encode(), backup=False)
