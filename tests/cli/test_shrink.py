from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.cli.shrink import write_crash_size
from kdumpctl_py.errors import KdumpError
from tests.builders import as_if_live, synthetic_snapshot

M = 1 << 20
REGION = ((0x2F000000, 0x3EFFFFFF),)  # 256 MiB




def shrink(capsys: pytest.CaptureFixture[str], root: Path, size: str) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        as_if_live(mp, root)
        code = main(["shrink", size])
    out, err = capsys.readouterr()
    return code, out, err


def test_shrink_writes_the_rounded_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path, crash=REGION)
    code, out, err = shrink(capsys, root, "192M")
    assert (code, err) == (0, "")
    assert out == ("freeing 64 MiB (0x3b000000-0x3effffff): the crash reservation goes from "
                   "256 MiB to 192 MiB\n")
    assert (root / "sys/kernel/kexec_crash_size").read_text() == f"{192 * M}\n"
    assert shrink(capsys, root, str(100 * M + 1))[0] == 0
    assert (root / "sys/kernel/kexec_crash_size").read_text() == f"{100 * M + 4096}\n"


def test_same_size_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path, crash=REGION)
    (root / "sys/kernel/kexec_crash_size").write_text("268435456")  # no newline: untouched
    assert shrink(capsys, root, "256M") == (0, "nothing to do: 256 MiB is reserved already\n", "")
    assert (root / "sys/kernel/kexec_crash_size").read_text() == "268435456"


@pytest.mark.parametrize("size,loaded,code,why", [
    ("512M", False, 2, "can only shrink"),
    ("0", True, 1, "a capture kernel is loaded"),
    ("0", None, 1, "cannot tell whether a capture kernel is loaded"),
    ("12 M", False, 2, "not a number"),
])
def test_refusals_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str,
                               loaded: bool | None, code: int, why: str) -> None:
    root = synthetic_snapshot(tmp_path, crash=REGION, loaded=loaded)
    got, out, err = shrink(capsys, root, size)
    assert (got, out) == (code, "")
    assert err.count("\n") == 1 and why in err
    assert (root / "sys/kernel/kexec_crash_size").read_text() == f"{256 * M}\n"


def test_kernel_errors_say_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "kexec_crash_size"
    target.write_text("0\n")

    def refuse(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))

    monkeypatch.setattr(os, "write", refuse)
    with pytest.raises(KdumpError, match="a capture kernel is loaded"):
        write_crash_size(target, 4096)
