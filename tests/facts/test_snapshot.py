"""take_snapshot's refusals, before it reads anything."""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.snapshot import take_snapshot
from kdumpctl_py.facts.view import META, SystemView
from tests.builders import tmpfs


def test_a_missing_directory_is_named_not_the_partial_file(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: `snapshot /nodir/x.tar.gz` said
    `/nodir/x.tar.gz.incomplete: No such file or directory`, a file nobody named."""
    (tmp_path / META).write_text(json.dumps({"uname": {"machine": "x86_64", "release": "6.1"}}))
    out = tmp_path / "nodir" / "x.tar.gz"
    with pytest.raises(KdumpError) as e:
        take_snapshot(str(out), SystemView(tmp_path))
    assert str(e.value) == (f"cannot write {out}: {out.parent} is not a directory; create "
                            "it, or name another file")


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs with no room left: a write there fails with ENOSPC for real."""
    with tmpfs(tmp_path / "full", "64k") as mnt:
        with contextlib.suppress(OSError), open(mnt / "fill", "wb", buffering=0) as f:
            while True:
                f.write(bytes(4096))
        yield mnt


@pytest.mark.parametrize("name", ["snap", "snap.tar.gz"])
def test_a_full_disk_leaves_nothing_and_names_the_snapshot(full_fs: Path, tmp_path: Path,
                                                           name: str) -> None:
    """Found by review: on a full disk `snapshot OUT.tar.gz` said only `No space left on
    device` and left `OUT.tar.gz.incomplete`, and `snapshot DIR` left a half-copied DIR and
    printed a list of every file copytree could not copy, temporary paths and all."""
    root = tmp_path / "root"
    root.mkdir()
    (root / META).write_text(json.dumps({"uname": {"machine": "x86_64", "release": "6.1"}}))
    (root / "proc").mkdir()
    (root / "proc" / "iomem").write_text("00001000-0009ffff : System RAM\n" * 100)
    out = full_fs / name
    with pytest.raises(OSError) as e:
        take_snapshot(str(out), SystemView(root))
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(out))
    assert [p.name for p in full_fs.iterdir()] == ["fill"]
