from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.builders import synthetic_snapshot
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_estimate_runs_on_fixture(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(SNAPSHOTS / name)
    assert main(["--sysroot", root, "estimate", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"schema", "snapshot", "parts", "needed", "reserved", "requested",
                           "ram", "default", "too_small", "verdict", "constants"}
    assert report["constants"].startswith("fitted to the QEMU crash cycles")
    assert main(["--sysroot", root, "estimate"]) == 0
    first, text = capsys.readouterr().out.split("\n", 1)
    assert first.startswith("snapshot of ")
    assert text.startswith(report["verdict"]) and "fitted to QEMU crash cycles" in text


def test_too_small_is_said_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path, "crashkernel=128M", crash=((0x30000000, 0x37FFFFFF),))
    assert main(["--sysroot", str(root), "estimate"]) == 0
    assert capsys.readouterr().out.split("\n")[1].startswith("TOO SMALL: 128 MiB reserved, about ")


def test_default_below_the_need_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default line says when it is not enough here (issue 23, item 3)."""
    assert main(["--sysroot", str(synthetic_snapshot(tmp_path)), "estimate"]) == 0
    out = capsys.readouterr().out
    assert out.split("\n")[1].startswith("needs about 448 MiB")
    assert ("default: 1G-4G:192M,4G-64G:256M,64G-:512M (256 MiB at this RAM): NOT ENOUGH here; "
            "use reset-crashkernel --value 448M\n") in out
