from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.config import parse_text
from kdumpctl_py.service.install import default_config, plan_install

REPO = Path(__file__).resolve().parents[2]


def test_plan_places_every_file() -> None:
    dests = {i.dest: i for i in plan_install("/opt/kd/bin")}
    assert set(dests) >= {
        "/usr/lib/systemd/system/kdumpctl-py.service",
        "/usr/lib/systemd/system/kdumpctl-py-capture.service",
        "/usr/lib/udev/rules.d/98-kdumpctl-py.rules",
        "/usr/lib/kernel/install.d/60-kdumpctl-py.install",
        "/usr/lib/kernel/install.d/92-kdumpctl-py.install",
        "/etc/kernel/postinst.d/kdumpctl-py",
        "/etc/kernel/postrm.d/kdumpctl-py",
        "/usr/share/man/man8/kdumpctl-py.8",
        "/usr/share/man/man5/kdumpctl-py.conf.5",
        "/etc/kdumpctl-py/kdump.conf",
    }
    unit = dests["/usr/lib/systemd/system/kdumpctl-py.service"].data.decode()
    assert "ExecStart=/opt/kd/bin/kdumpctl-py start" in unit and "/usr/bin/kdumpctl-py" not in unit
    assert dests["/usr/lib/kernel/install.d/60-kdumpctl-py.install"].mode == 0o755
    hook = dests["/etc/kernel/postinst.d/kdumpctl-py"]
    assert hook.mode == 0o755 and b"/opt/kd/bin/kdumpctl-py initramfs build" in hook.data


def test_default_config_is_all_comments_and_parses() -> None:
    text = default_config().decode()
    assert all(not line or line.startswith("#") for line in text.splitlines())
    assert "#keep 0" in text and "#core_collector" not in text
    uncommented = "\n".join(line[1:] for line in text.splitlines()
                            if line.startswith("#") and not line.startswith("# "))
    assert parse_text(uncommented, "default").keep == 0


def test_install_dry_run_then_real_never_overwrites_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--prefix", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would write {tmp_path}/usr/lib/systemd/system/kdumpctl-py.service" in out
    assert not (tmp_path / "usr").exists()
    conf = tmp_path / "etc/kdumpctl-py/kdump.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("keep 5\n")
    assert main(["install", "--prefix", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"kept      {conf}" in out and conf.read_text() == "keep 5\n"
    unit = (tmp_path / "usr/lib/systemd/system/kdumpctl-py.service").read_text()
    assert "ExecStart=/usr/bin/kdumpctl-py start" in unit  # another root: /usr/bin
    plugin = tmp_path / "usr/lib/kernel/install.d/60-kdumpctl-py.install"
    assert os.stat(plugin).st_mode & 0o777 == 0o755
    assert main(["install", "--prefix", str(tmp_path)]) == 0
    assert "wrote" not in capsys.readouterr().out  # the second time changes nothing


def test_install_dry_run_into_the_root_names_the_initramfs_it_would_build(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: install into / builds the capture initramfs, and its dry run did
    not say so; it writes nothing, the initramfs included."""
    from kdumpctl_py.plan import initramfs
    from kdumpctl_py.service import initramfs as service

    plan = initramfs.InitramfsPlan("6.1.0-test", "initramfs-tools", "/usr/sbin/mkinitramfs",
                                   "/boot/kdumpctl-py-initrd-6.1.0-test.img", "zstd", "missing")
    monkeypatch.setattr(initramfs, "plan_initramfs", lambda view, release=None: plan)
    monkeypatch.setattr(service, "build", lambda plan: pytest.fail("built on a dry run"))
    assert main(["install", "--prefix", "/", "--dry-run"]) == 0
    assert capsys.readouterr().out.endswith(
        "would build /boot/kdumpctl-py-initrd-6.1.0-test.img (missing), as kdumpctl-py "
        "initramfs build\n")
