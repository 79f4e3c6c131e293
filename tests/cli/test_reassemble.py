"""`kdumpctl-py reassemble` as a new administrator meets it: input that is not a
flattened dump is bad input (exit 2), and leaves nothing behind."""

from __future__ import annotations

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
