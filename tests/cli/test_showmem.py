"""showmem on every fixture snapshot, and on synthetic ones where the answer is known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.cli.showmem import describe
from kdumpctl_py.facts.view import SystemView
from tests.builders import LOW_RAM, synthetic_snapshot
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS, expected_facts

M, G = 1 << 20, 1 << 30


def showmem_json(capsys: pytest.CaptureFixture[str], root: Path) -> dict[str, Any]:
    assert main(["--sysroot", str(root), "showmem", "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_showmem_on_fixture(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    report = showmem_json(capsys, SNAPSHOTS / name)
    want = expected_facts(name)
    assert [[r["start"], r["end"]] for r in report["reserved"]["regions"]] == want["regions"]
    assert report["verdict"]
    assert report["ram"]["bytes"] is None or report["ram"]["bytes"] > 0
    assert main(["--sysroot", str(SNAPSHOTS / name), "showmem"]) == 0
    assert capsys.readouterr().out.split("\n")[1] == report["verdict"]


def test_reserved_as_asked(tmp_path: Path) -> None:
    root = synthetic_snapshot(tmp_path, "ro crashkernel=2G-64G:256M,64G-:512M quiet",
                              crash=((0x2F000000, 0x3EFFFFFF),))
    report = describe(SystemView(root))
    assert report["failed"] is False and report["verdict"].startswith("reserved as asked")
    assert report["requested"]["evaluated"]["size"] == 256 * M
    assert report["reserved"]["regions"] == [
        {"kind": "main", "start": 0x2F000000, "end": 0x3EFFFFFF, "size": 256 * M}]
    assert report["ram"]["bytes"] == 0x9EC00 + LOW_RAM[1] - LOW_RAM[0] + 1 + 21 * G


def test_high_and_fallback_regions_count(tmp_path: Path) -> None:
    two = ((0x10000000, 0x1FFFFFFF), (0x600000000, 0x63FFFFFFF))  # 256M low, 1G high
    high = describe(SystemView(synthetic_snapshot(tmp_path / "a", "crashkernel=1G,high",
                                                  crash=two)))
    assert high["failed"] is False
    assert [r["kind"] for r in high["reserved"]["regions"]] == ["low", "main"]
    # A plain size that did not fit below 4G was retried high with the default low region.
    plain = describe(SystemView(synthetic_snapshot(tmp_path / "b", "crashkernel=1G", crash=two)))
    assert plain["failed"] is False


def test_failed_reservation(tmp_path: Path) -> None:
    report = describe(SystemView(synthetic_snapshot(tmp_path, "crashkernel=512M")))
    assert report["failed"] is True and "FAILED to reserve the 512 MiB" in report["verdict"]


def test_shrunk_since_boot(tmp_path: Path) -> None:
    root = synthetic_snapshot(tmp_path, "crashkernel=512M", crash=((0x20000000, 0x2FFFFFFF),))
    report = describe(SystemView(root))
    assert report["failed"] is False and "shrunk" in report["verdict"]


def test_rejected_request(tmp_path: Path) -> None:
    root = synthetic_snapshot(tmp_path, "crashkernel=64G-:512M")
    report = describe(SystemView(root))
    assert report["failed"] is None
    assert report["verdict"] == ("nothing is reserved: the kernel rejects crashkernel= here: "
                                 "no range matches RAM 24.0 GiB (rounded up to 24 GiB)")


def test_masked_iomem_uses_kexec_crash_size(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root = synthetic_snapshot(tmp_path, "crashkernel=256M", crash=((0x2F000000, 0x3EFFFFFF),),
                              masked=True)
    report = showmem_json(capsys, root)
    assert report["reserved"]["regions_known"] is False
    assert report["reserved"]["total"] == 256 * M
    assert report["ram"]["source"].startswith("MemTotal")
    assert report["failed"] is False
