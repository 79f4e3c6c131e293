from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kdumpctl_py.facts.network import boot_network, route6_interface, route_interface
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


ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth2\t0002000A\t00000000\t0001\t0\t0\t5\t00FFFFFF\t0\t0\t0
eth3\t6402000A\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0
"""

ROUTE6 = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth1
00000000000000000000000000000001 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
"""


def test_the_route_to_a_server_is_the_longest_up_match_of_least_metric() -> None:
    if sys.byteorder != "little":
        pytest.skip("the table above is a little-endian machine's")
    assert route_interface(ROUTE, "10.0.2.100") == "eth1"  # eth3's /32 is down
    assert route_interface(ROUTE, "192.0.2.7") == "eth0"  # the default route
    assert route_interface(ROUTE.splitlines()[0], "10.0.2.100") is None
    assert route6_interface(ROUTE6, "fd00::2") == "eth0"
    assert route6_interface(ROUTE6, "2001:db8::1") == "eth1"
    assert route6_interface(ROUTE6, "::1") == "lo"
