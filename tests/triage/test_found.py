from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdumpctl_py.triage.found import find, name_parts


def dump(root: Path, rel: str, vmcore: str = "vmcore", size: int = 10,
         save: dict[str, object] | None = None) -> Path:
    d = root / rel
    d.mkdir(parents=True)
    (d / vmcore).write_bytes(b"x" * size)
    if save is not None:
        (d / "save.json").write_text(json.dumps(save))
    return d


def test_name_parts() -> None:
    assert name_parts("web-1.example-2026-11-30-08:15:02") == ("web-1.example",
                                                                "2026-11-30T08:15:02")
    assert name_parts("db-2026-11-30-08:15:02-2") == ("db", "2026-11-30T08:15:02")
    assert name_parts("2026-11-30-081502") is None


def test_a_dump_servers_tree_newest_first(tmp_path: Path) -> None:
    dump(tmp_path, "web/web-2026-11-30-08:15:02", save={"level_written": 31})
    dump(tmp_path, "db/db-2026-12-01-09:00:00", vmcore="vmcore-incomplete", size=3)
    dump(tmp_path, "db/db-2026-12-01-09:00:00/nested-2026-12-02-00:00:00")  # not searched
    copy = dump(tmp_path, "by-hand")
    os.utime(copy / "vmcore", (0, 0))
    (tmp_path / "empty-2026-12-03-00:00:00").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "web")  # links to directories are not followed
    found = find([str(tmp_path)])
    assert [(d.host, d.date, d.complete, d.bytes) for d in found] == [
        ("db", "2026-12-01T09:00:00", False, 3),
        ("web", "2026-11-30T08:15:02", True, 10),
        (None, "1970-01-01T00:00:00", True, 10),
    ]
    assert found[1].save == {"level_written": 31} and found[0].save is None
    assert find([str(tmp_path / "web"), str(tmp_path)])[1].host == "web"  # once each


def test_a_root_it_cannot_read_is_an_error_not_no_dumps(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `dumps DIR` and `triage DIR` run by a user who cannot read DIR
    (/var/crash is 0700) said `no dumps under DIR`, exit 0: os.walk drops the error."""
    real = os.scandir

    def scandir(path: str) -> object:
        if path == str(tmp_path):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(PermissionError) as e:
        find([str(tmp_path)])
    assert e.value.filename == str(tmp_path)
