"""The plain copy, the fallback's last step: what a failure leaves open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdumpctl_py.capture import copy as copy_mod
from kdumpctl_py.capture.copy import copy_vmcore
from tests.builders import fails_closing_every_fd, make_vmcore

# Each step of the copy that holds something open, made to fail at its n-th call: the
# new target (its parent's fsync), the dump's directory (the target's fsync after it is
# made), the dump's file, a write, its fsync, its rename (the log's is the first) and
# the directory's fsync.
FAILING_STEPS: dict[str, tuple[object, str, int]] = {
    "target": (os, "fsync", 1),
    "directory": (os, "fsync", 2),
    "open": (copy_mod, "open_incomplete", 1),
    "write": (os, "pwritev", 1),
    "sync": (os, "fsync", 4),
    "rename": (os, "rename", 2),
    "directory fsync": (os, "fsync", 5),
}


@pytest.mark.parametrize("step", FAILING_STEPS)
def test_a_copy_failing_at_any_step_leaves_no_fd_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """An fd left behind would keep the target busy when capture unmounts it next."""
    src, _ = make_vmcore(tmp_path)
    where, name, n = FAILING_STEPS[step]
    fails_closing_every_fd(monkeypatch, where, name, n,
                           lambda: copy_vmcore(str(src), str(tmp_path / "crash")))


def test_a_whole_copy_is_renamed(tmp_path: Path) -> None:
    src, _ = make_vmcore(tmp_path)
    result = copy_vmcore(str(src), str(tmp_path / "crash"))
    d = Path(result.directory or "")
    assert result.complete and sorted(p.name for p in d.iterdir()) == ["vmcore",
                                                                        "vmcore-dmesg.txt"]
    assert (d / "vmcore").read_bytes() == src.read_bytes()


def test_a_short_write_is_written_on_not_skipped(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """pwritev may write less than asked (a file system that fills up writes what fits and
    says how much): the copy writes the rest, and is never renamed whole without it."""
    src, _ = make_vmcore(tmp_path)
    real = os.pwritev
    calls = {"n": 0}

    def short(fd: int, buffers: list[bytes], offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return os.pwrite(fd, memoryview(buffers[0])[:len(buffers[0]) // 2], offset)
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "pwritev", short)
    result = copy_vmcore(str(src), str(tmp_path / "crash"))
    assert result.complete and calls["n"] > 1
    assert (Path(result.directory or "") / "vmcore").read_bytes() == src.read_bytes()


def test_the_target_failing_as_the_copy_is_settled_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename to vmcore failing on a failing target is the target's failure naming
    the copy, as a failed write is, not a bare Input/output error."""
    import errno

    from kdumpctl_py.capture.dumpdir import TargetError

    src, _ = make_vmcore(tmp_path)
    real = os.rename

    def rename(a: str, b: str, **kw: object) -> None:
        if b == "vmcore":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(a, b, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(TargetError, match="vmcore-incomplete.*Input/output error"):
        copy_vmcore(str(src), str(tmp_path / "crash"))
