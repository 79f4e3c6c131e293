"""A Config as kdump.conf text (`config show`), and the checks only the machine can answer."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from kdumpctl_py.config.model import (
    Config,
    NfsTarget,
    SshTarget,
    Target,
    device_path,
    known_hosts,
)
from kdumpctl_py.config.settings import SETTINGS
from kdumpctl_py.facts.known_hosts import host_name, knows_host

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

# Where the programs a network target needs are looked for (the capture kernel boots
# the same root).
PROGRAM_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")
def show(cfg: Config, looked: str = "the configuration file") -> str:
    """Every directive with the value in force; `# default` marks what the file left out.

    core_collector and dump_level/compress/format say the same thing: the form the
    file used is shown (dump_level/compress/format when it used neither).
    """
    given = {name for name, _ in cfg.lines}
    collector = "core_collector" in given
    out = [f"# {cfg.source or f'{looked} does not exist: the defaults'}"]
    out += [f"# warning: {w}" for w in cfg.warnings]
    for s in SETTINGS:
        if s.name == "core_collector" and not collector:
            continue
        if s.name in ("dump_level", "compress", "format") and collector:
            continue
        line = s.show(cfg)
        is_given = bool(given & set(s.names))
        if line is None:
            out.append(f"# {s.name if len(s.names) == 1 else '|'.join(s.names)} "
                       f"{s.syntax}  # none")
        else:
            out.append(line if is_given else f"{line}  # default")
    return "\n".join(out)


def _program(view: SystemView, name: str) -> bool:
    return any(os.access(view.path(f"{d}/{name}"), os.X_OK) for d in PROGRAM_DIRS)


def _ssh_problems(cfg: Config, target: SshTarget, view: SystemView) -> list[str]:
    """The key, the server's host key beside it, and the ssh client."""
    problems = []
    name = host_name(target.host, target.port)
    if not view.path(cfg.sshkey).is_file():
        problems.append(f"sshkey {cfg.sshkey}: no such key; run kdumpctl-py propagate")
    elif not knows_host(view.text(known_hosts(cfg.sshkey)) or "", name):
        problems.append(f"{known_hosts(cfg.sshkey)}: no host key for {name}, so ssh "
                        "without a prompt refuses it; run kdumpctl-py propagate")
    if not _program(view, "ssh"):
        problems.append("ssh: the ssh client is not installed (openssh-client)")
    return problems


def machine_problems(cfg: Config, view: SystemView) -> list[str]:
    """What the first kernel can check before a crash: the target and the programs."""
    problems = []
    if isinstance(cfg.target, Target):
        dev = device_path(cfg.target.device)
        if not view.path(dev).exists():
            problems.append(f"{cfg.target.fstype} {cfg.target.device}: no device {dev}")
    if isinstance(cfg.target, SshTarget):
        problems += _ssh_problems(cfg, cfg.target, view)
    if isinstance(cfg.target, NfsTarget) and not _program(view, "mount.nfs4"):
        problems.append(f"nfs {cfg.target.export}: mount.nfs4 is not installed "
                        "(nfs-common, or nfs-utils)")
    if cfg.dtb is not None and not view.path(cfg.dtb).is_file():
        problems.append(f"dtb {cfg.dtb}: no such file")
    for key in ("kdump_pre", "kdump_post"):
        prog: tuple[str, ...] = getattr(cfg, key)
        if prog and not os.access(view.path(prog[0]), os.X_OK):
            problems.append(f"{key} {prog[0]}: not an executable file")
    return problems
