"""`kdumpctl-py initramfs` as a new administrator meets it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.facts.view import META


def test_remove_dry_run_says_what_remove_would_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `initramfs remove 1.2.3 --dry-run` said
    `would remove /boot/kdumpctl-py-initrd-1.2.3.img` where there is none, and remove
    itself says there is nothing to remove."""
    (tmp_path / META).write_text(json.dumps({"uname": {"machine": "x86_64", "release": "6.1"}}))
    argv = ["--sysroot", str(tmp_path), "initramfs", "remove", "1.2.3", "--dry-run"]
    assert main(argv) == 0
    assert capsys.readouterr().out == "no /boot/kdumpctl-py-initrd-1.2.3.img to remove\n"
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/kdumpctl-py-initrd-1.2.3.img").write_bytes(b"x")
    assert main(argv) == 0
    assert capsys.readouterr().out == "would remove /boot/kdumpctl-py-initrd-1.2.3.img\n"
    assert (tmp_path / "boot/kdumpctl-py-initrd-1.2.3.img").exists()
