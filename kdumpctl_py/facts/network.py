"""Does this system bring its network up at boot by itself, with nobody logged in?

The capture boot is the system's own, so a network target is reached only
through a configuration that starts at boot: systemd-networkd with a .network
file, NetworkManager, netplan, or ifupdown with an `auto`/`allow-hotplug`
interface, each enabled. A desktop whose network comes up at login has none.
"""

from __future__ import annotations

import re
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
