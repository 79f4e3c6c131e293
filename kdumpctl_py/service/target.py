"""Where dumps go: `path` on the root file system, or under a target file system's mount."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kdumpctl_py.config.model import Config, NfsTarget, Target, device_path, is_network
from kdumpctl_py.service.testid import STATE_DIR

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

# The capture kernel's private mount point for the target.
MOUNT_POINT = "/run/kdumpctl-py/target"
# Soft, so that a server that goes away fails the writes (the dump stays
# -incomplete, failure_action follows) instead of hanging the capture kernel.
NFS_OPTIONS = "vers=4,soft,timeo=100,retrans=3"
# How long the capture kernel waits for an ssh server to answer on its port: the
# network may still be coming up when the capture service starts.
ROUTE_WAIT_S = 90


def under(mountpoint: str, path: str) -> str:
    return os.path.join(mountpoint, path.lstrip("/")).rstrip("/") or "/"


def unescape_mount_field(field: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash as octal escapes."""
    for code, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, ch)
    return field


def first_kernel_dump_dir(cfg: Config, view: SystemView) -> str | None:
    """The dump directory as the running (first) kernel sees it; None when the target
    is not mounted here."""
    if cfg.target is None:
        return cfg.path
    if not isinstance(cfg.target, Target):
        return None
    want = os.path.realpath(view.path(device_path(cfg.target.device)))
    for line in (view.text("/proc/self/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith("/"):
            continue
        if os.path.realpath(view.path(unescape_mount_field(fields[0]))) == want:
            return under(unescape_mount_field(fields[1]), cfg.path)
    return None


def unlisted(cfg: Config) -> tuple[str, str] | None:
    """Where the dumps are when this (first) kernel cannot list them (an ssh server, an NFS
    export, a target file system not mounted here), and their directory as people read it
    (user@host:/path, HOST:/EXPORT/path as check_target names them, or PATH on FSTYPE
    DEVICE); None when it can list them."""
    target = cfg.target
    if target is None:
        return None
    if isinstance(target, Target):
        device = f"{target.fstype} {target.device}"
        return f"{device}, not mounted here", f"{cfg.path} on {device}"
    if isinstance(target, NfsTarget):
        return f"the NFS export {target.export}", f"{target.export}{cfg.path}"
    from kdumpctl_py.service.ssh import where

    return f"the ssh server {target.spec}", where(target, cfg.path)


# Where the capture kernel leaves a test's result when the dump went over the network:
# the root file system, which the first kernel reads after the reboot.
NETWORK_RESULTS = STATE_DIR


def first_kernel_results(cfg: Config, view: SystemView) -> str | None:
    """Where `status` looks for a test's result."""
    return NETWORK_RESULTS if is_network(cfg) else first_kernel_dump_dir(cfg, view)


def shown(cfg: Config, path: str, mountpoint: str = MOUNT_POINT) -> str:
    """A path under the NFS mount as the server's export names it (host:/export/...)."""
    if isinstance(cfg.target, NfsTarget) and (path + "/").startswith(mountpoint + "/"):
        return cfg.target.export.rstrip("/") + path[len(mountpoint):]
    return path
