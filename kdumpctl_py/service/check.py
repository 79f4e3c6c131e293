"""Is the dump target usable now? Asked by `status` and before `start` arms.

An ssh target is checked as the capture kernel will use it: the key alone,
no prompt, bounded waits; the directory created if missing and a file made
and removed in it; the free space there read with df; the interface and
address this kernel reaches the server through. An NFS export is not mounted
from the first kernel: the check says so rather than guess.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kdumpctl_py.config.model import Config, NfsTarget, SshTarget
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.network import boot_network
from kdumpctl_py.units import format_bytes

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

CHECK_TIMEOUT_S = 30


@dataclass(frozen=True)
class TargetCheck:
    target: str  # as people read it: user@host:/path
    ok: bool | None  # None: not checked from here
    detail: str  # one line: what was found, or why it fails
    route: str | None = None  # the interface (and address) the server is reached through
    boot_network: str | None = None  # what brings the network up at boot; None: nothing
    warning: str | None = None  # one line: no network configuration starts at boot

    def to_json(self) -> dict[str, object]:
        return {"target": self.target, "ok": self.ok, "detail": self.detail,
                "route": self.route, "boot_network": self.boot_network,
                "warning": self.warning}


def parse_route(text: str) -> str | None:
    """`ip -o route get` output as `dev (src)`."""
    words = text.split()

    def after(key: str) -> str | None:
        return words[words.index(key) + 1] if key in words[:-1] else None

    dev, src = after("dev"), after("src")
    return f"{dev} ({src})" if dev and src else dev


def route_to(host: str) -> str | None:
    """How this kernel reaches `host`. The capture kernel boots the same network
    configuration, so it is the best guess of what the capture kernel will use."""
    try:
        addr = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0]
        r = subprocess.run(["ip", "-o", "route", "get", str(addr)], capture_output=True,
                           text=True, timeout=CHECK_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_route(r.stdout) if r.returncode == 0 else None


def probe_command(path: str) -> str:
    """Create PATH, make and remove a file in it, print the free KiB there."""
    q = shlex.quote(path)
    return (f"mkdir -p -m 0700 -- {q} && cd -- {q} && t=$(mktemp .kdumpctl-py-check.XXXXXX) "
            "&& rm -f -- \"$t\" && df -Pk . | awk 'NR==2 {print $4}'")


NO_BOOT_NETWORK = ("no network configuration starts at boot here (systemd-networkd, "
                   "NetworkManager, netplan or ifupdown): the capture kernel will have no "
                   "network to reach the target")


def check_target(cfg: Config, view: SystemView | None = None) -> TargetCheck | None:
    """The network target's check (with `view`, also whether the network comes up at
    boot); None for local targets (status shows their space)."""
    check = _check(cfg)
    if check is None or view is None:
        return check
    found = boot_network(view)
    return replace(check, boot_network=found, warning=None if found else NO_BOOT_NETWORK)


def _check(cfg: Config) -> TargetCheck | None:
    if isinstance(cfg.target, SshTarget):
        from kdumpctl_py.service.ssh import Remote

        remote = Remote(cfg.target, cfg.sshkey)
        where = remote.where(cfg.path)
        try:
            free_kib = remote.run(probe_command(cfg.path), timeout=CHECK_TIMEOUT_S).strip()
        except KdumpError as e:
            return TargetCheck(where, False, f"ssh target {where} fails: {e}")
        free = f", {format_bytes(int(free_kib) * 1024)} free" if free_kib.isdigit() else ""
        route = route_to(cfg.target.host)
        return TargetCheck(where, True, f"ssh target {where}: reachable with {cfg.sshkey}, "
                           f"writable{free}" + (f", through {route}" if route else ""), route)
    if isinstance(cfg.target, NfsTarget):
        where = f"{cfg.target.export}{cfg.path}"
        route = route_to(cfg.target.export.rpartition(":")[0].strip("[]"))
        return TargetCheck(where, None, f"nfs target {where}: not mounted from the first "
                           "kernel; the capture kernel mounts it"
                           + (f" (through {route} here)" if route else ""), route)
    return None


def arm_decision(cfg: Config, check: TargetCheck | None) -> str | None:
    """None: arm. Else the one line `start` prints: an error when not arming, a warning
    when dump_to_rootfs arms anyway (the prefix tells which)."""
    if check is None or check.ok is not False:
        return None
    if cfg.failure_action == "dump_to_rootfs":
        return (f"warning: {check.detail}; armed anyway: failure_action dump_to_rootfs "
                f"saves the dump under {cfg.path} on the root file system")
    return (f"error: {check.detail}; not armed (fix the target, or set failure_action "
            "dump_to_rootfs to arm with the root file system as fallback)")
