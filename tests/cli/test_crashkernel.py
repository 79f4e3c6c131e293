"""The `crashkernel eval` contract: exit codes, the JSON shape, one-line errors."""

from __future__ import annotations

import json

import pytest

from kdumpctl_py.cli import main

G, M = 1 << 30, 1 << 20


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["crashkernel", "eval", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,expected", [
    (["256M", "--ram", "4G"], {"size": 256 * M, "offset": None, "high": False, "low_size": None}),
    (["256M@0", "--ram", "4G"], {"size": 256 * M, "offset": None, "high": False,
                                 "low_size": None}),
    (["0x10000000@16M", "--ram", "0x100000000"], {"size": 256 * M, "offset": 16 * M,
                                                  "high": False, "low_size": None}),
    (["2G-64G:256M,64G-:512M", "--ram", "1980M"], {"size": 256 * M, "offset": None,
                                                   "high": False, "low_size": None}),
    (["1G,high", "--ram", "16G", "--arch", "x86_64"], {"size": G, "offset": None, "high": True,
                                                       "low_size": 256 * M}),
    (["1G,high", "--ram", "16G", "--arch", "aarch64"], {"size": G, "offset": None, "high": True,
                                                        "low_size": 128 * M}),
    (["quiet crashkernel=1G,high crashkernel=64M,low", "--cmdline", "--ram", "16G", "--arch",
      "riscv64"], {"size": G, "offset": None, "high": True, "low_size": 64 * M}),
    (["ro crashkernel=512M crashkernel=256M", "--cmdline", "--ram", "16G"],
     {"size": 256 * M, "offset": None, "high": False, "low_size": None}),
    (["ro crashkernel=256M crashkernel=64M,cma", "--cmdline", "--ram", "16G", "--release",
      "6.16.3"], {"size": 256 * M, "offset": None, "high": False, "low_size": None}),
])
def test_json(argv: list[str], expected: dict[str, object],
              capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv, "--json")
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    assert json.loads(out) == {"schema": 1, **expected}


def test_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "1G,high", "--ram", "16G", "--arch", "aarch64") == (
        0, "reserves 1 GiB searched high first, plus 128 MiB low\n", "")
    assert run(capsys, "256M@16M", "--ram", "4G") == (0, "reserves 256 MiB at 0x1000000\n", "")


@pytest.mark.parametrize("argv,why", [
    (["2G-64G:256M,64G-:512M", "--ram", "1G"], "no range matches RAM 1 GiB"),
    (["4G", "--ram", "4G"], "is not below the RAM total"),
    (["256M,high", "--ram", "8G", "--arch", "s390x"], "s390x kernel has no"),
    (["256M,low", "--ram", "8G", "--arch", "x86_64"], ",low is only used with"),
    (["256Mb", "--ram", "8G"], "unexpected 'b'"),
    (["quiet", "--cmdline", "--ram", "8G"], "no crashkernel= on the command line"),
    (["256M", "--ram", "8GB"], "--ram '8GB' is not a number"),
    (["256M", "--ram", "0"], "--ram must be more than 0"),
    (["256M", "--ram", "8G", "--arch", "mips"], "invalid choice"),
    (["256M"], "--ram"),
])
def test_errors_are_one_line_exit_2(argv: list[str], why: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.startswith("kdumpctl-py: error: ") and err.count("\n") == 1
    assert why in err


@pytest.mark.parametrize("release", ["5", "v5.4", "x", ""])
def test_a_release_that_names_no_version_is_refused(release: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `--release 5` (or v5.4, or a typo) read the value by 6.12's rules,
    the default, and said arm64 reserves 1G,high, which no 5.x arm64 kernel does."""
    code, out, err = run(capsys, "1G,high", "--ram", "16G", "--arch", "arm64",
                         "--release", release)
    assert (code, out) == (2, "")
    assert err == (f"kdumpctl-py: error: argument --release: '{release}' is not a kernel "
                   "release; give one as uname -r prints it, such as 5.10.0-30-amd64, or "
                   "MAJOR.MINOR (see kdumpctl-py crashkernel eval --help)\n")
