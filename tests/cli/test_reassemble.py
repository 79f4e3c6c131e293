"""`kdumpctl-py reassemble` as a new administrator meets it: input that is not a
flattened dump is bad input (exit 2), and leaves nothing behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kdumpctl_py.cli import main


@pytest.mark.parametrize("content", [None, b"", b"hello world\n", b"\x7fELF" + bytes(5000)],
                         ids=["missing", "empty", "text", "elf"])
def test_what_is_not_a_flattened_dump_is_bad_input(
        content: bytes | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the sweep: each exited 1, and all but the missing one left an empty
    OUT-incomplete beside OUT."""
    flat = tmp_path / "flat"
    if content is not None:
        flat.write_bytes(content)
    assert main(["reassemble", str(flat), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"kdumpctl-py: error: {flat}") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if content is None else ["flat"])


def flat_dump(tmp_path: Path) -> Path:
    """A flattened dump of the builders' small vmcore."""
    from kdumpctl_py.capture.save import SaveOptions, save_vmcore
    from tests.builders import make_vmcore

    src, _ = make_vmcore(tmp_path)
    flat = tmp_path / "flat"
    with open(flat, "wb") as f:
        save_vmcore(str(src), "-", SaveOptions(1, "zstd", flat=True, progress=False), f)
    return flat


def test_an_output_in_a_missing_directory_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the sweep: `reassemble FLAT typo/out` named typo/out-incomplete, a file the
    administrator never typed, and only once the stream's header was read; the directory
    is named first, as for save --target and snapshot; a mistyped path is bad input: exit 2."""
    flat = flat_dump(tmp_path)
    out = tmp_path / "typo" / "out"
    assert main(["reassemble", str(flat), str(out)]) == 2
    assert capsys.readouterr().err == (f"kdumpctl-py: error: cannot write {out}: {out.parent} "
                                       "is not a directory; create it, or name another file\n")
    assert not out.parent.exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_a_write_that_fails_names_the_file_it_left(
        code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the sweep: a full disk, or a damaged record's offset past what a file can
    hold, said only `No space left on device` or `File too large`, naming neither the
    file being written nor that the part written is left in it."""
    flat = flat_dump(tmp_path)
    out = tmp_path / "out"

    def fail(*args: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("kdumpctl_py.capture.reassemble.os.pwrite", fail)
    assert main(["reassemble", str(flat), str(out)]) == 1
    assert capsys.readouterr().err == (
        f"kdumpctl-py: error: writing {out}-incomplete failed: {os.strerror(code)}; it holds "
        "what was written so far\n")
    assert not out.exists() and (tmp_path / "out-incomplete").exists()


def test_standard_input_is_never_read_from_a_terminal(tmp_path: Path) -> None:
    """Found by the sweep: `reassemble - out` typed at a shell waited for a binary stream
    to be typed, with nothing said; gzip -d refuses a terminal the same way."""
    import pty
    import subprocess
    import sys

    main_fd, tty = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "kdumpctl_py", "reassemble", "-",
                            str(tmp_path / "out")], stdin=tty, capture_output=True, text=True,
                           timeout=30, cwd=Path(__file__).resolve().parents[2], check=False)
    finally:
        os.close(tty)
        os.close(main_fd)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "terminal" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_standard_input_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `reassemble - out` said `reassembled from -`."""
    import sys

    flat = flat_dump(tmp_path)
    out = tmp_path / "out"
    with open(flat, "rb") as stream:
        monkeypatch.setattr(sys, "stdin", stream)
        assert main(["reassemble", "-", str(out)]) == 0
    assert capsys.readouterr().out.endswith(" reassembled from standard input\n")
