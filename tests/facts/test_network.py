from __future__ import annotations

from pathlib import Path

import pytest

from kdumpctl_py.facts.network import boot_network
from kdumpctl_py.facts.view import SystemView

WANTS = "etc/systemd/system/multi-user.target.wants"


def root(tmp_path: Path, files: dict[str, str]) -> SystemView:
    (tmp_path / "kdumpctl-snapshot.json").write_text("{}")
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return SystemView(tmp_path)


@pytest.mark.parametrize("files,found", [
    ({}, None),
    ({f"{WANTS}/systemd-networkd.service": ""}, None),  # enabled, but nothing configured
    ({f"{WANTS}/systemd-networkd.service": "",
      "etc/systemd/network/20-wired.network": "[Match]\nName=en*\n"}, "systemd-networkd"),
    ({f"{WANTS}/NetworkManager.service": ""}, "NetworkManager"),
    ({"etc/netplan/50-cloud-init.yaml": "network: {}\n"}, "netplan"),
    ({f"{WANTS}/networking.service": "",
      "etc/network/interfaces": "auto lo\niface lo inet loopback\n"}, None),
    ({f"{WANTS}/networking.service": "",
      "etc/network/interfaces.d/eth0": "allow-hotplug eth0\niface eth0 inet dhcp\n"},
     "ifupdown"),
    ({"etc/network/interfaces": "auto eth0\niface eth0 inet dhcp\n"}, None),  # not enabled
])
def test_what_brings_the_network_up_at_boot(tmp_path: Path, files: dict[str, str],
                                            found: str | None) -> None:
    view = root(tmp_path, files)
    assert boot_network(view) == found
    assert not view.unknown  # missing directories are not errors
