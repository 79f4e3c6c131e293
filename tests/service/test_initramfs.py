"""Building the capture initramfs: the generator's output replaces ours only when whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.plan.initramfs import OVERRIDE_NAME, OVERRIDES, InitramfsPlan
from kdumpctl_py.service import initramfs

# A stand-in mkinitramfs: checks it got the overrides in the copied configuration, then
# writes "-o"'s file (or fails half-way when the configuration says so).
FAKE = """#!/bin/sh
conf=$2 out=$6
[ "$(cat "$conf/conf.d/{name}")" = "$(printf '{overrides}')" ] || exit 3
grep -q FAIL "$conf/initramfs.conf" && {{ echo partial > "$out"; echo "E: boom" >&2; exit 1; }}
echo "new $7" > "$out"
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[InitramfsPlan, Path]:
    tool = tmp_path / "mkinitramfs"
    tool.write_text(FAKE.format(name=OVERRIDE_NAME, overrides=OVERRIDES.replace("\n", "\\n")))
    tool.chmod(0o755)
    conf = tmp_path / "etc-initramfs-tools"
    conf.mkdir()
    (conf / "initramfs.conf").write_text("MODULES=most\n")
    plan = InitramfsPlan("6.1.0-9", "initramfs-tools", str(tool), str(tmp_path / "own.img"),
                         "xz", "not built yet")
    return plan, conf


def test_build_writes_the_image(setup: tuple[InitramfsPlan, Path]) -> None:
    plan, conf = setup
    line = initramfs.build(plan, str(conf))
    assert Path(plan.output).read_text() == "new 6.1.0-9\n"
    assert line.startswith(f"built {plan.output} (initramfs-tools, xz, ")
    assert line.endswith("): not built yet")
    assert (conf / "conf.d").exists() is False  # the system's configuration is untouched


def test_a_failed_build_keeps_the_previous_image(setup: tuple[InitramfsPlan, Path]) -> None:
    plan, conf = setup
    Path(plan.output).write_text("previous\n")
    (conf / "initramfs.conf").write_text("FAIL\n")
    with pytest.raises(KdumpError, match=r"failed building .*own.img \(exit 1\): E: boom"):
        initramfs.build(plan, str(conf))
    assert Path(plan.output).read_text() == "previous\n"
    assert [p.name for p in Path(plan.output).parent.glob(".own.img*")] == []


def test_refresh_warns_and_goes_on(setup: tuple[InitramfsPlan, Path],
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    plan, _ = setup

    def failing(plan: InitramfsPlan) -> str:
        raise KdumpError("mkinitramfs failed building it (exit 1): E: boom")

    monkeypatch.setattr(initramfs, "plan_initramfs", lambda view, release=None: plan)
    monkeypatch.setattr(initramfs, "build", failing)
    initramfs.refresh(None)  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert err == ("kdumpctl-py: warning: mkinitramfs failed building it (exit 1): E: boom; "
                   "the capture kernel gets the system initrd\n")


def test_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(initramfs, "own_initrd_path", lambda release: str(tmp_path / release))
    (tmp_path / "6.1.0-9").write_text("x")
    assert initramfs.remove("6.1.0-9") == f"removed {tmp_path}/6.1.0-9"
    assert initramfs.remove("6.1.0-9") == f"no {tmp_path}/6.1.0-9 to remove"
