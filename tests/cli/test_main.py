from __future__ import annotations

import subprocess
import sys

import pytest

from kdumpctl_py.cli import build_parser, main


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


def test_no_abbreviations(capsys: pytest.CaptureFixture[str]) -> None:
    """`analyse --debug VMCORE` is the global --debug, never --debug-dir (issue 23, item 6)."""
    args = build_parser().parse_args(["analyse", "--debug", "vmcore"])
    assert (args.debug, args.vmcore, args.debug_dirs) == (True, "vmcore", None)
    assert main(["analyse", "--debug-d", "x", "vmcore"]) == 2
    assert "unrecognized arguments: --debug-d" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["status", "--sysroot", "SNAP", "--debug"],
    ["--sysroot", "SNAP", "status", "--debug"],
    ["--debug", "status", "--sysroot", "SNAP"],
    ["config", "show", "--sysroot", "SNAP", "--debug"],
])
def test_global_options_anywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.sysroot, args.debug) == ("SNAP", True)


def test_sub_command_keeps_the_global_sysroot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDUMPCTL_SYSROOT", "ENV")
    assert build_parser().parse_args(["status"]).sysroot == "ENV"
    assert build_parser().parse_args(["--sysroot", "A", "status"]).sysroot == "A"
    assert build_parser().parse_args(["--sysroot", "A", "status", "--sysroot", "B"]).sysroot == "B"


def test_usage_error_has_no_traceback_with_debug(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--debug", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err == ("kdumpctl-py: error: unrecognized arguments: --no-such-option "
                   "(see kdumpctl-py --help)\n")
