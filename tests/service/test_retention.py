from __future__ import annotations

from pathlib import Path

from kdumpctl_py.service.retention import apply, plan, scan
from tests.builders import unfinished_kdump_header


def dump(root: Path, name: str, file: str = "vmcore") -> None:
    (root / name).mkdir(parents=True)
    (root / name / file).write_bytes(b"x")


def test_keeps_newest_complete_and_every_incomplete(tmp_path: Path) -> None:
    dump(tmp_path, "h-2026-01-01-00:00:00")
    dump(tmp_path, "h-2026-01-02-00:00:00", "vmcore-incomplete")
    dump(tmp_path, "b-2026-01-03-00:00:00", "vmcore.flat")
    dump(tmp_path, "a-2026-01-04-00:00:00")
    dump(tmp_path, "a-2026-01-04-00:00:00-1")
    dump(tmp_path, "not-a-dump")  # no timestamp: never touched
    (tmp_path / "h-2026-01-05-00:00:00").mkdir()  # no vmcore: not a dump
    names = [d.name for d in scan(str(tmp_path))]
    assert names == ["h-2026-01-01-00:00:00", "h-2026-01-02-00:00:00",
                     "b-2026-01-03-00:00:00", "a-2026-01-04-00:00:00",
                     "a-2026-01-04-00:00:00-1"]
    r = apply(str(tmp_path), 2)
    assert r.deleted == ["h-2026-01-01-00:00:00", "b-2026-01-03-00:00:00"]
    assert r.kept == ["a-2026-01-04-00:00:00", "a-2026-01-04-00:00:00-1"]
    assert r.incomplete == ["h-2026-01-02-00:00:00"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["a-2026-01-04-00:00:00", "a-2026-01-04-00:00:00-1",
                    "h-2026-01-02-00:00:00", "h-2026-01-05-00:00:00", "not-a-dump"]


def test_keep_zero_keeps_all(tmp_path: Path) -> None:
    dump(tmp_path, "h-2026-01-01-00:00:00")
    assert plan(scan(str(tmp_path)), 0).deleted == []
    assert scan(str(tmp_path / "missing")) == []


def test_a_dump_named_complete_that_says_otherwise_is_never_deleted(tmp_path: Path) -> None:
    """`vmcore` whose kdump header says unfinished, or whose save.json says incomplete or
    not saved, is incomplete: kept and not counted, as `vmcore-incomplete` is."""
    dump(tmp_path, "h-2026-01-01-00:00:00")
    (tmp_path / "h-2026-01-01-00:00:00/vmcore").write_bytes(unfinished_kdump_header())
    dump(tmp_path, "h-2026-01-02-00:00:00")
    (tmp_path / "h-2026-01-02-00:00:00/save.json").write_text('{"complete": false}')
    dump(tmp_path, "h-2026-01-03-00:00:00")
    (tmp_path / "h-2026-01-03-00:00:00/save.json").write_text('{"saved": false}')
    dump(tmp_path, "h-2026-01-04-00:00:00")
    dump(tmp_path, "h-2026-01-05-00:00:00")
    r = apply(str(tmp_path), 1)
    assert r.deleted == ["h-2026-01-04-00:00:00"] and r.kept == ["h-2026-01-05-00:00:00"]
    assert r.incomplete == ["h-2026-01-01-00:00:00", "h-2026-01-02-00:00:00",
                            "h-2026-01-03-00:00:00"]


def test_the_dump_just_saved_stays_and_counts_first(tmp_path: Path) -> None:
    """Found by review: a crashed kernel with its clock wrong (an RTC reset, a crash before
    NTP) names its dump older than those before it, and keep 1 deleted the dump capture
    had just saved, which then still reported it saved."""
    dump(tmp_path, "h-2025-12-01-00:00:00")
    dump(tmp_path, "h-2026-01-01-00:00:00")
    dump(tmp_path, "h-2000-01-01-00:00:00")  # just saved
    r = apply(str(tmp_path), 1, saved="h-2000-01-01-00:00:00")
    assert r.deleted == ["h-2025-12-01-00:00:00", "h-2026-01-01-00:00:00"]
    assert r.kept == ["h-2000-01-01-00:00:00"]
    assert plan(scan(str(tmp_path)), 2, "h-2000-01-01-00:00:00").deleted == []
    dump(tmp_path, "h-2026-02-01-00:00:00")
    assert plan(scan(str(tmp_path)), 2, "h-2000-01-01-00:00:00").kept == [
        "h-2026-02-01-00:00:00", "h-2000-01-01-00:00:00"]
