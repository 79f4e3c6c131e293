from __future__ import annotations

import io
from pathlib import Path

from kdumpctl_py.analyse import stored
from kdumpctl_py.triage.found import find
from kdumpctl_py.triage.pool import analyse_all, progress_line
from tests.analyse import panics
from tests.builders import panic_vmcore


def test_progress_line() -> None:
    assert progress_line(1, 3) == "\ranalysing dumps [##########....................] 1/3"
    assert progress_line(0, 0).endswith("] 0/0")


def test_analyses_in_processes_and_keeps_them(tmp_path: Path) -> None:
    for name, text in (("a-2026-11-01-00:00:00", panics.BOOKWORM_X86_64),
                       ("b-2026-11-02-00:00:00", panics.OOPS_X86_64)):
        (tmp_path / name).mkdir()
        panic_vmcore(tmp_path / name / "vmcore", text)
    (tmp_path / "c-2026-11-03-00:00:00").mkdir()
    (tmp_path / "c-2026-11-03-00:00:00" / "vmcore").write_bytes(b"not a dump")
    dumps = find([str(tmp_path)])
    bar = io.StringIO()
    out = analyse_all(dumps, jobs=2, progress=bar)
    assert [a.dump.host for a in out] == ["c", "b", "a"]
    assert out[0].analysis is None and "neither an ELF vmcore" in (out[0].error or "")
    assert out[1].signature and out[1].signature["kind"] == "oops"
    assert out[2].signature and out[2].signature["kind"] == "panic"
    assert bar.getvalue().endswith("3/3\n")
    assert all(stored.load(a.dump.vmcore) == a.analysis for a in out[1:])
    again = io.StringIO()
    assert [a.analysis for a in analyse_all(dumps, progress=again)][1:] == [
        a.analysis for a in out[1:]]
    assert again.getvalue().endswith("1/1\n")  # only the bad dump is tried again


def test_a_dump_that_cannot_be_analysed_is_said_in_the_tools_words(tmp_path: Path) -> None:
    """Found by review: triage's reasons began with Python's class names (UsageError: ...)."""
    from kdumpctl_py.triage.pool import analyse_one

    bad = tmp_path / "vmcore"
    bad.write_bytes(b"not a dump at all")
    analysis, why = analyse_one(str(bad))
    assert analysis is None and why and not why.startswith(("UsageError", "KdumpError"))
