from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.analyse import panics
from tests.builders import panic_vmcore, unfinished_kdump_header


def server(tmp_path: Path) -> Path:
    """A dump server's tree: web's sysrq crash (analysed), db's oops (not yet)."""
    root = tmp_path / "dumps"
    for rel, text in (("web/web-2026-11-30-08:15:02", panics.BOOKWORM_X86_64),
                      ("db/db-2026-12-01-09:00:00", panics.OOPS_X86_64)):
        (root / rel).mkdir(parents=True)
        panic_vmcore(root / rel / "vmcore", text)
    (root / "web/web-2026-11-30-08:15:02/save.json").write_text(
        json.dumps({"level_written": 31, "vmcore": "vmcore"}))
    return root


def test_lists_newest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = server(tmp_path)
    assert main(["triage", str(root / "web")]) == 0
    capsys.readouterr()
    assert main(["dumps", "--json", str(root)]) == 0
    rows = json.loads(capsys.readouterr().out)["dumps"]
    assert [(r["host"], r["analysed"], r["level_written"]) for r in rows] == [
        ("db", False, None), ("web", True, 31)]
    assert rows[1]["kernel"] == "6.1.0-57-cloud-amd64" and len(rows[1]["signature"]) == 16
    assert rows[1]["panic_message"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert main(["dumps", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["DATE", "HOST", "KERNEL", "SIZE", "STATE", "LEVEL",
                                "SIGNATURE", "PANIC"]
    assert "not analysed" in lines[1] and lines[2].endswith("sysrq triggered crash")


def test_the_configured_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    root = server(tmp_path)
    conf = tmp_path / "kdump.conf"
    conf.write_text(f"path {root}/db\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    assert main(["dumps", "--json"]) == 0
    assert [r["host"] for r in json.loads(capsys.readouterr().out)["dumps"]] == ["db"]
    conf.write_text("ssh kdump@dumps.example.org\n")
    assert main(["dumps"]) == 2
    assert "name the dump directories" in capsys.readouterr().err


def test_a_vmcore_that_says_it_is_unfinished_is_incomplete(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The name `vmcore` is not enough: a kdump header still marked incomplete (its only
    block: no page is read) or a save.json saying so makes the dump INCOMPLETE."""
    root = server(tmp_path)
    (root / "db/db-2026-12-01-09:00:00/vmcore").write_bytes(unfinished_kdump_header())
    (root / "web/web-2026-11-30-08:15:02/save.json").write_text(
        json.dumps({"level_written": 31, "vmcore": "vmcore", "complete": False}))
    assert main(["dumps", "--json", str(root)]) == 0
    rows = json.loads(capsys.readouterr().out)["dumps"]
    assert [(r["host"], r["complete"]) for r in rows] == [("db", False), ("web", False)]
    assert main(["dumps", str(root)]) == 0
    assert all("INCOMPLETE" in line for line in capsys.readouterr().out.splitlines()[1:])


def test_no_dumps_names_where_it_looked(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the new-administrator sweep: `dumps` said only `no dumps found`, leaving
    the administrator to guess which directory the configuration sent it to."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["dumps", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert capsys.readouterr().out == f"no dumps under {tmp_path}/a, {tmp_path}/b\n"
    conf = tmp_path / "kdump.conf"
    conf.write_text(f"path {tmp_path}/never-made\n")  # nothing saved yet: not an error
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    assert main(["dumps"]) == 0
    assert capsys.readouterr().out == f"no dumps under {tmp_path}/never-made\n"
    assert main(["dumps", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dumps"] == []


def test_a_directory_given_is_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: a missing directory was said to be `not a directory`."""
    assert main(["dumps", str(tmp_path / "typo")]) == 2
    assert capsys.readouterr().err == (f"kdumpctl-py: error: {tmp_path}/typo does not exist; "
                                       "name a directory of dumps\n")
    (tmp_path / "file").write_text("")
    assert main(["dumps", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == (f"kdumpctl-py: error: {tmp_path}/file is not a "
                                       "directory; name a directory of dumps\n")
