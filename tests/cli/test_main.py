from __future__ import annotations

import subprocess
import sys

import pytest

from kdumpctl_py.cli import main


def test_bad_usage_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kdumpctl-py: error: ")


def test_bad_sysroot_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sysroot", "/nonexistent", "status"]) == 2
    assert capsys.readouterr().err == (
        "kdumpctl-py: error: sysroot /nonexistent is not a directory or a .tar.gz snapshot\n")


def test_debug_shows_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "--sysroot", "/nonexistent", "status"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("snapshot\n")


def test_console_entry_point_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "kdumpctl_py", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("kdumpctl-py ")
