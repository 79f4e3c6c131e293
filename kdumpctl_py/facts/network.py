"""Does this system bring its network up at boot by itself, with nobody logged in?
And which interface reaches a server (the routing tables in /proc/net)?

The capture boot is the system's own, so a network target is reached only
through a configuration that starts at boot: systemd-networkd with a .network
file, NetworkManager, netplan, or ifupdown with an `auto`/`allow-hotplug`
interface, each enabled. A desktop whose network comes up at login has none.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

WANTS = ("/etc/systemd/system/multi-user.target.wants",
         "/etc/systemd/system/network-online.target.wants",
         "/etc/systemd/system/sysinit.target.wants")
NETWORKD_DIRS = ("/etc/systemd/network", "/run/systemd/network")
IFUPDOWN_AUTO = re.compile(r"^\s*(?:auto|allow-hotplug)\s+(?!lo\s*$)\S", re.M)


def _names(view: SystemView, directory: str) -> list[str]:
    return view.listdir(directory) if view.path(directory).is_dir() else []


def boot_network(view: SystemView) -> str | None:
    """The configuration that brings the network up at boot, or None."""
    enabled = {name for d in WANTS for name in _names(view, d)}
    if "systemd-networkd.service" in enabled and any(
            n.endswith(".network") for d in NETWORKD_DIRS for n in _names(view, d)):
        return "systemd-networkd"
    if "NetworkManager.service" in enabled:
        return "NetworkManager"
    if any(n.endswith(".yaml") for n in _names(view, "/etc/netplan")):
        return "netplan"
    files = ["/etc/network/interfaces"] * view.path("/etc/network/interfaces").is_file()
    files += [f"/etc/network/interfaces.d/{n}" for n in _names(view, "/etc/network/interfaces.d")]
    texts = [view.text(f) or "" for f in files]
    if "networking.service" in enabled and any(IFUPDOWN_AUTO.search(t) for t in texts):
        return "ifupdown"
    return None


def route_interface(table: str, addr: str) -> str | None:
    """The interface of the longest matching up route to an IPv4 `addr` in
    /proc/net/route (the main table: local addresses are not in it), lowest metric
    first among equals; None when no route matches."""
    want = int(ipaddress.IPv4Address(addr))
    best: tuple[int, int, str] | None = None
    for line in table.splitlines()[1:]:
        f = line.split()
        if len(f) < 8 or not int(f[3], 16) & 1:  # RTF_UP
            continue
        dest, mask = (int.from_bytes(int(x, 16).to_bytes(4, sys.byteorder), "big")
                      for x in (f[1], f[7]))
        if want & mask != dest:
            continue
        rank = (bin(mask).count("1"), -int(f[6]), f[0])
        if best is None or rank[:2] > best[:2]:
            best = rank
    return best[2] if best else None


def route6_interface(table: str, addr: str) -> str | None:
    """The same for an IPv6 `addr` in /proc/net/ipv6_route (every table, local too)."""
    want = int(ipaddress.IPv6Address(addr))
    best: tuple[int, int, str] | None = None
    for line in table.splitlines():
        f = line.split()
        if len(f) < 10 or not int(f[8], 16) & 1:  # RTF_UP
            continue
        plen = int(f[1], 16)
        shift = 128 - plen
        if want >> shift != int(f[0], 16) >> shift:
            continue
        rank = (plen, -int(f[5], 16), f[9])
        if best is None or rank[:2] > best[:2]:
            best = rank
    return best[2] if best else None
