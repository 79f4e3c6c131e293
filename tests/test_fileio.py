from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.fileio import BACKUP_SUFFIX, replace_atomically


def test_replace_keeps_mode_and_backup(tmp_path: Path) -> None:
    f = tmp_path / "grub"
    f.write_bytes(b"old\n")
    os.chmod(f, 0o600)
    backup = replace_atomically(f, b"new\n")
    assert f.read_bytes() == b"new\n"
    assert backup == tmp_path / f"grub{BACKUP_SUFFIX}" and backup.read_bytes() == b"old\n"
    assert f.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grub", f"grub{BACKUP_SUFFIX}"]


def test_concurrent_edit_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "cmdline"
    f.write_bytes(b"theirs\n")
    with pytest.raises(KdumpError, match="changed while"):
        replace_atomically(f, b"ours\n", expect=b"what we read\n")
    assert f.read_bytes() == b"theirs\n"


def test_failed_write_leaves_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "cfg"
    f.write_bytes(b"original\n")

    def enospc(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(OSError):
        replace_atomically(f, b"new\n")
    assert f.read_bytes() == b"original\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cfg"]


def test_a_missing_directory_is_named_not_the_temporary_file(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: `status --prometheus /nodir/x.prom` said
    `/nodir/.x.prom.sy2nxdcc.tmp: No such file or directory`, a file nobody named."""
    with pytest.raises(KdumpError) as e:
        replace_atomically(tmp_path / "nodir" / "x.prom", b"", backup=False)
    assert str(e.value) == (f"cannot write {tmp_path}/nodir/x.prom: {tmp_path}/nodir is not "
                            "a directory; create it, or name another file")


@pytest.mark.parametrize("kind", ["directory", "character device"])
def test_only_a_regular_file_is_replaced(tmp_path: Path, kind: str) -> None:
    """Found by review: `elfcorehdr build -o /dev/null` as root put a regular file in place
    of /dev/null (a link to it stands in for it here), and -o /dev/zero ran out of memory
    reading the "old contents"; a directory was `Is a directory`, exit 1."""
    out = tmp_path / "out"
    if kind == "directory":
        out.mkdir()
    else:
        out.symlink_to("/dev/null")
    with pytest.raises(UsageError, match=f"^cannot write {out}: it is a {kind}, and "
                       "kdumpctl-py only replaces regular files; name a file$"):
        replace_atomically(out, b"new\n", backup=False)
    assert out.is_dir() if kind == "directory" else os.readlink(out) == "/dev/null"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
