from __future__ import annotations

import pytest

from kdumpctl_py.cli import main
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS, expected_facts


def test_explicit_arch(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get-default-crashkernel", "--arch", "aarch64", "--page-size", "64K"]) == 0
    assert capsys.readouterr().out == "1G-4G:260M,4G-64G:420M,64G-:676M\n"


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_running_arch_of_a_snapshot(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sysroot", str(SNAPSHOTS / name), "get-default-crashkernel"]) == 0
    out = capsys.readouterr().out
    assert main(["get-default-crashkernel", "--arch", expected_facts(name)["arch"]]) == 0
    if expected_facts(name)["arch"] != "aarch64":  # 64K arm64 kernels differ
        assert out == capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--arch", "x86_64", "--page-size", "64K"],
                                  ["--arch", "sparc"], ["--page-size", "8K"]])
def test_bad_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get-default-crashkernel", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kdumpctl-py: error: ")
