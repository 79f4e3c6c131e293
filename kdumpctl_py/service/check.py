"""Is the dump target usable now? Asked by `status` and before `start` arms.

A network target is checked as the capture kernel will use it: an ssh server
with the key alone, no prompt, bounded waits; an NFS export mounted (nfs4, the
capture kernel's options, one try) on a private directory and unmounted again.
Either way the directory is created if missing and a file made and removed in
it, the free space there is compared with the dump's estimated size (a
warning when short: compression usually makes the dump smaller), and the
interface and address this kernel reaches the server through are named.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import socket
import subprocess
import tempfile
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from kdumpctl_py.config.model import Config, NfsTarget, SshTarget
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.network import boot_network, route6_interface, route_interface
from kdumpctl_py.plan.dump_size import dump_size_estimate
from kdumpctl_py.service.target import NFS_OPTIONS, under
from kdumpctl_py.units import format_bytes

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

CHECK_TIMEOUT_S = 30
# Where the first kernel mounts an NFS export for the check, briefly.
CHECK_MOUNTS = "/run/kdumpctl-py"


@dataclass(frozen=True)
class TargetCheck:
    target: str  # as people read it: user@host:/path
    ok: bool | None  # None: not checked from here
    detail: str  # one line: what was found, or why it fails
    route: str | None = None  # the interface (and address) the server is reached through
    boot_network: str | None = None  # what brings the network up at boot; None: nothing
    # one line each: too little space for the estimate, no network configuration at boot
    warning: str | None = None
    free_bytes: int | None = None  # at the target directory
    dump_bytes: int | None = None  # the estimate (plan/dump_size.py)

    def to_json(self) -> dict[str, object]:
        return {"target": self.target, "ok": self.ok, "detail": self.detail,
                "route": self.route, "boot_network": self.boot_network,
                "warning": self.warning, "free_bytes": self.free_bytes,
                "dump_bytes": self.dump_bytes}


def route_to(host: str, view: SystemView) -> str | None:
    """How this kernel reaches `host`, as `dev (source address)`. The capture kernel
    boots the same network configuration, so it is the best guess of what the
    capture kernel will use. A UDP socket's connect sends nothing: it only makes the
    kernel choose the source address; the interface comes from /proc/net."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((sockaddr[0], 9, *sockaddr[2:]))
            src = str(s.getsockname()[0])
    except OSError:
        return None
    addr = str(sockaddr[0])
    if family == socket.AF_INET6:
        dev = route6_interface(view.text("/proc/net/ipv6_route") or "", addr)
    elif addr == src or ipaddress.ip_address(addr).is_loopback:
        dev = "lo"  # this machine's own address: the local table, not in /proc/net/route
    else:
        dev = route_interface(view.text("/proc/net/route") or "", addr)
    return f"{dev} ({src})" if dev else None


def probe_command(path: str) -> str:
    """Create PATH, make and remove a file in it, print the free KiB there."""
    q = shlex.quote(path)
    return (f"mkdir -p -m 0700 -- {q} && cd -- {q} && t=$(mktemp .kdumpctl-py-check.XXXXXX) "
            "&& rm -f -- \"$t\" && df -Pk . | awk 'NR==2 {print $4}'")


NO_BOOT_NETWORK = ("no network configuration starts at boot here (systemd-networkd, "
                   "NetworkManager, netplan or ifupdown): the capture kernel will have no "
                   "network to reach the target")


class Mounts(Protocol):
    def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None: ...
    def umount(self, mountpoint: str) -> None: ...


class CheckMounts:
    """mount and umount, bounded, their error's last line kept for the check's line."""

    def _run(self, argv: list[str]) -> None:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S,
                               stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise KdumpError(f"{' '.join(argv)}: no answer in {CHECK_TIMEOUT_S} s") from None
        except OSError as e:
            raise KdumpError(f"{argv[0]}: {e.strerror or e}") from None
        if r.returncode != 0:
            lines = [ln.strip() for ln in r.stderr.splitlines() if ln.strip()]
            raise KdumpError(lines[-1] if lines else f"{argv[0]} exited {r.returncode}")

    def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None:
        self._run(["mount", "-t", fstype, "-o", options, device, mountpoint])

    def umount(self, mountpoint: str) -> None:
        self._run(["umount", mountpoint])


def check_target(cfg: Config, view: SystemView, mounts: Mounts | None = None,
                 mount_dir: str = CHECK_MOUNTS) -> TargetCheck | None:
    """The network target's check, with whether the network comes up at boot and the
    free space against the dump's estimated size; None for local targets (status
    shows their space)."""
    check = _check(cfg, view, mounts or CheckMounts(), mount_dir)
    if check is None:
        return check
    warnings = []
    need = dump_size_estimate(view.meminfo, cfg.dump_level)
    free = check.free_bytes
    if free is not None and need is not None:
        check = replace(check, dump_bytes=need)
        if free < need:
            warnings.append(f"{check.target} has {format_bytes(free)} free and the "
                            f"dump may need up to {format_bytes(need)} (the pages kept at "
                            f"-d {cfg.dump_level}, before compression)")
    found = boot_network(view)
    if not found:
        warnings.append(NO_BOOT_NETWORK)
    return replace(check, boot_network=found, warning="; ".join(warnings) or None)


def _check(cfg: Config, view: SystemView, mounts: Mounts, mount_dir: str) -> TargetCheck | None:
    if isinstance(cfg.target, SshTarget):
        from kdumpctl_py.service.ssh import Remote

        remote = Remote(cfg.target, cfg.sshkey)
        where = remote.where(cfg.path)
        try:
            free_kib = remote.run(probe_command(cfg.path), timeout=CHECK_TIMEOUT_S).strip()
        except KdumpError as e:
            return TargetCheck(where, False, f"ssh target {where} fails: {e}")
        free = int(free_kib) * 1024 if free_kib.isdigit() else None
        route = route_to(cfg.target.host, view)
        return TargetCheck(where, True, f"ssh target {where}: reachable with {cfg.sshkey}, "
                           f"writable{_free(free)}" + (f", through {route}" if route else ""),
                           route, free_bytes=free)
    if isinstance(cfg.target, NfsTarget):
        where = f"{cfg.target.export}{cfg.path}"
        try:
            free = _probe_nfs(cfg.target, cfg.path, mounts, mount_dir)
        except (KdumpError, OSError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            return TargetCheck(where, False, f"nfs target {where} fails: {why}")
        route = route_to(cfg.target.export.rpartition(":")[0].strip("[]"), view)
        return TargetCheck(where, True, f"nfs target {where}: mountable, writable{_free(free)}"
                           + (f", through {route}" if route else ""), route, free_bytes=free)
    return None


def _free(free: int | None) -> str:
    return "" if free is None else f", {format_bytes(free)} free"


def _probe_nfs(target: NfsTarget, path: str, mounts: Mounts, mount_dir: str) -> int:
    """Mount the export as the capture kernel will (one try), create PATH, make and
    remove a file in it; the free bytes there. Always unmounted again."""
    os.makedirs(mount_dir, mode=0o700, exist_ok=True)
    mnt = tempfile.mkdtemp(prefix="check-", dir=mount_dir)
    try:
        mounts.mount("nfs4", target.export,
                     ",".join(filter(None, (NFS_OPTIONS, "retry=0", target.options))), mnt)
        try:
            directory = under(mnt, path)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".kdumpctl-py-check.", dir=directory)
            os.close(fd)
            os.unlink(probe)
            st = os.statvfs(directory)
            return st.f_bavail * st.f_frsize
        finally:
            mounts.umount(mnt)
    finally:
        with contextlib.suppress(OSError):  # still mounted: umount's error says why
            os.rmdir(mnt)


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
