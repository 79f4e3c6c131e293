"""save.json as status, analyse and `save --fallback` show it."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from kdumpctl_py.analyse.model import DebugInfo, Report
from kdumpctl_py.analyse.render import render_text, to_json
from kdumpctl_py.capture.record import Attempt, SaveRecord, read_record, summary, write_record
from kdumpctl_py.cli import main
from kdumpctl_py.facts.view import SystemView
from tests.builders import make_vmcore, unfinished_kdump_header
from tests.localserver import tmpfs

FELL_BACK = SaveRecord(31, 1, "at -d 1 without struct pages", "kdump", "zstd", True, 2.5, 4096,
                       "vmcore", [Attempt("at -d 31", 31, "ValueError: broke")])


def test_summary_says_what_was_written_and_why() -> None:
    rec = dataclasses.asdict(FELL_BACK)
    assert summary(rec) == "saved at -d 1 after saving at -d 31 failed: ValueError: broke"
    assert summary({"level_written": 31}) == "saved at -d 31"
    assert summary({"level_written": None, "complete": False}) == \
        "copied whole (no filtering), INCOMPLETE"
    assert summary({"level_written": 1, "warnings": ["kernel too old"]}) == \
        "saved at -d 1: kernel too old"


def test_status_shows_how_the_newest_dump_was_saved(tmp_path: Path) -> None:
    d = tmp_path / "host-2026-01-01-00:00:00"
    d.mkdir()
    (d / "vmcore").write_bytes(b"x")
    write_record(str(d), FELL_BACK)
    (bad := tmp_path / "host-2026-01-02-00:00:00").mkdir()
    (bad / "vmcore-incomplete").write_bytes(b"x")
    (bad / "save.json").write_text("{not json")
    dumps = SystemView("/").dumps(str(tmp_path))
    saved = {e.name: e.saved for e in dumps}
    assert saved == {d.name: summary(dataclasses.asdict(FELL_BACK)), bad.name: None}
    assert read_record(str(bad)) is None


def test_analyse_shows_the_record() -> None:
    def report() -> Report:
        return Report("/var/crash/h-2026-01-01-00:00:00/vmcore", "kdump-compressed",
                      DebugInfo(False, None, None, None, False, False))

    with_record = report()
    with_record.save = dataclasses.asdict(FELL_BACK)
    assert "saved at -d 1 after saving at -d 31 failed" in render_text(with_record)
    out = to_json(with_record)
    assert out["save"]["level_written"] == 1 and out["save"]["schema"] == 1
    assert to_json(report())["save"] is None


def test_save_fallback_from_the_command_line(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src, _ = make_vmcore(tmp_path)
    rc = main(["save", "--vmcore", str(src), "--target", str(tmp_path / "crash"),
               "--dump-level", "31", "--compress", "zlib", "--no-progress", "--fallback"])
    assert rc == 0
    (d,) = (tmp_path / "crash").iterdir()
    rec = json.loads((d / "save.json").read_text())
    # This vmcore has no struct page layout: saved as asked, pages kept, and said so.
    assert rec["level_asked"] == 31 and rec["level_written"] == 1 and not rec["failed"]
    assert "every page but zero pages kept" in capsys.readouterr().out


def test_analyse_reads_the_record_of_that_very_file(tmp_path: Path) -> None:
    from kdumpctl_py.analyse.report import save_record

    write_record(str(tmp_path), FELL_BACK)
    assert save_record(str(tmp_path / "vmcore")) == dataclasses.asdict(FELL_BACK)
    assert save_record(str(tmp_path / "vmcore.elf")) is None


NO_SPACE = os.strerror(errno.ENOSPC)


def test_a_record_that_does_not_fit_leaves_nothing_behind(tmp_path: Path) -> None:
    """save.json on a full disk (a real 64k tmpfs): the error, and neither save.json nor
    its temporary file left in the dump's directory."""
    d = tmp_path / "full"
    d.mkdir()
    tmpfs(d, "64k")
    try:
        with open(d / "filler", "wb") as f, pytest.raises(OSError, match=NO_SPACE):
            f.write(bytes(1 << 20))
        with pytest.raises(OSError, match=NO_SPACE):
            write_record(str(d), FELL_BACK)
        assert sorted(p.name for p in d.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(d)], check=True)


def test_status_and_metrics_see_a_vmcore_that_says_it_is_unfinished(tmp_path: Path) -> None:
    """`status` and `status --prometheus` judge a dump as `dumps` and `keep` do: `vmcore`
    whose kdump header is still marked unfinished, or whose save.json says it is not
    complete, is incomplete."""
    marked, said = tmp_path / "h-2026-01-01-00:00:00", tmp_path / "h-2026-01-02-00:00:00"
    for d in (marked, said):
        d.mkdir()
    (marked / "vmcore").write_bytes(unfinished_kdump_header())
    (said / "vmcore").write_bytes(b"x")
    (said / "save.json").write_text('{"level_written": 31, "complete": false}')
    dumps = SystemView("/").dumps(str(tmp_path))
    assert {e.name: e.complete for e in dumps} == {marked.name: False, said.name: False}


def test_a_record_nested_past_the_parsers_depth_is_unreadable(tmp_path: Path) -> None:
    """A save.json of 64 KiB of "[" (a damaged or hostile file, read over ssh too) is no
    record, as any other file that is not one, not a RecursionError out of dumps or keep."""
    (tmp_path / "save.json").write_text("[" * 65536)
    assert read_record(str(tmp_path)) is None
