"""The configuration's data: the frozen `Config` and the dump targets it can name."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_SSHKEY = "/root/.ssh/kdump_id_ed25519"


def known_hosts(key: str) -> str:
    """The server's host key is looked for beside the key (ssh's UserKnownHostsFile)."""
    return os.path.join(os.path.dirname(key), "known_hosts")


@dataclass(frozen=True)
class Target:
    """A local file system to mount in the capture kernel: `ext4 LABEL=dumps`."""

    fstype: str
    device: str  # /dev/..., LABEL=..., UUID=..., PARTUUID=... or PARTLABEL=...


@dataclass(frozen=True)
class SshTarget:
    """A directory on an ssh server: `ssh kdump@dumps.example.org` (port: `host:2222`)."""

    user: str
    host: str
    port: int | None = None

    @property
    def spec(self) -> str:
        """The kdump.conf word: user@host, user@host:port, user@[v6]:port."""
        host = f"[{self.host}]" if ":" in self.host and self.port else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port else "")


@dataclass(frozen=True)
class NfsTarget:
    """An NFS v4 export mounted in the capture kernel: `nfs server:/dumps [OPTIONS]`."""

    export: str  # host:/path
    options: str = ""  # mount -o options, comma-separated, added to nfs4's defaults


AnyTarget = Target | SshTarget | NfsTarget


@dataclass(frozen=True)
class Config:
    """A kdump.conf as read: every directive with its value, defaults for what it
    leaves out, and where each came from (source, lines)."""

    path: str = "/var/crash"
    target: AnyTarget | None = None
    sshkey: str = DEFAULT_SSHKEY
    dump_level: int = 31
    compress: str = "zstd"
    zlib_engine: str = "auto"
    format: str = "kdump"
    flat: bool = False
    threads: int = 0
    memory_limit: int = 0  # bytes saving may use; 0: half of MemAvailable
    failure_action: str = "reboot"
    final_action: str = "reboot"
    kdump_pre: tuple[str, ...] = ()
    kdump_post: tuple[str, ...] = ()
    method: str = "auto"
    dtb: str | None = None  # the capture kernel's device tree, for the extended call
    keep: int = 0  # 0: keep every dump
    debuginfo_fetch: bool = False  # the next boot's report may download debug info
    cmdline_append: tuple[str, ...] = ()
    cmdline_remove: tuple[str, ...] = ()
    source: str | None = None  # the file read; None: no file, the defaults
    lines: tuple[tuple[str, int], ...] = ()  # (directive, line number) as read
    warnings: tuple[str, ...] = ()  # FILE:LINE: what was ignored and why


def is_network(cfg: Config) -> bool:
    """An ssh or nfs target: the capture kernel needs the network up."""
    return cfg.target is not None and not isinstance(cfg.target, Target)


BY_KEY = {"LABEL": "by-label", "UUID": "by-uuid", "PARTUUID": "by-partuuid",
          "PARTLABEL": "by-partlabel"}


def device_path(device: str) -> str:
    """The /dev path udev gives a LABEL=/UUID=/... spec (the spec itself if a path)."""
    key, sep, value = device.partition("=")
    if sep and key in BY_KEY:
        return f"/dev/disk/{BY_KEY[key]}/{value}"
    return device
