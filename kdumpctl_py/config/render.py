"""A Config as kdump.conf text (`config show`), and the checks only the machine can answer."""

from __future__ import annotations

import os
import shlex
from typing import TYPE_CHECKING

from kdumpctl_py.config.settings import SETTINGS, Config, NfsTarget, Setting, SshTarget, Target

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

BY_KEY = {"LABEL": "by-label", "UUID": "by-uuid", "PARTUUID": "by-partuuid",
          "PARTLABEL": "by-partlabel"}


def device_path(device: str) -> str:
    """The /dev path udev gives a LABEL=/UUID=/... spec (the spec itself if a path)."""
    key, sep, value = device.partition("=")
    if sep and key in BY_KEY:
        return f"/dev/disk/{BY_KEY[key]}/{value}"
    return device


def _words(words: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(w) for w in words)


def collector_line(cfg: Config) -> str:
    flag = {"zlib": " -c", "lzo": " -l", "zstd": " -z", "none": ""}[cfg.compress]
    line = "makedumpfile" + ("" if cfg.format == "elf" else flag)
    line += " -E" if cfg.format == "elf" else ""
    line += " -F" if cfg.flat else ""
    line += f" -d {cfg.dump_level}"
    return line + (f" --num-threads {cfg.threads}" if cfg.threads else "")


def size_word(n: int) -> str:
    """A byte count as the configuration writes it: auto for 0, else the largest whole unit."""
    if not n:
        return "auto"
    for suffix, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def _value(s: Setting, cfg: Config) -> str | None:
    """The directive's line for `cfg`, or None when it has nothing to say."""
    key = s.name
    t = cfg.target
    if key == "ext2":
        return f"{t.fstype} {shlex.quote(t.device)}" if isinstance(t, Target) else None
    if key == "ssh":
        return f"ssh {t.spec}" if isinstance(t, SshTarget) else None  # no shell characters
    if key == "nfs":
        return (_words(("nfs", t.export) + ((t.options,) if t.options else ()))
                if isinstance(t, NfsTarget) else None)
    if key == "core_collector":
        return f"core_collector {collector_line(cfg)}"
    if key == "memory_limit":
        return f"memory_limit {size_word(cfg.memory_limit)}"
    if key == "debuginfo_fetch":
        return f"debuginfo_fetch {'yes' if cfg.debuginfo_fetch else 'no'}"
    if key in ("kdump_pre", "kdump_post", "cmdline_append", "cmdline_remove"):
        words: tuple[str, ...] = getattr(cfg, key)
        return f"{key} {_words(words)}" if words else None
    return f"{key} {shlex.quote(str(getattr(cfg, key)))}"


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
        line = _value(s, cfg)
        is_given = bool(given & set(s.names))
        if line is None:
            out.append(f"# {s.name if len(s.names) == 1 else '|'.join(s.names)} "
                       f"{s.syntax}  # none")
        else:
            out.append(line if is_given else f"{line}  # default")
    return "\n".join(out)


def machine_problems(cfg: Config, view: SystemView) -> list[str]:
    """What the first kernel can check before a crash: the target and the programs."""
    problems = []
    if isinstance(cfg.target, Target):
        dev = device_path(cfg.target.device)
        if not view.path(dev).exists():
            problems.append(f"{cfg.target.fstype} {cfg.target.device}: no device {dev}")
    if isinstance(cfg.target, SshTarget) and not view.path(cfg.sshkey).is_file():
        problems.append(f"sshkey {cfg.sshkey}: no such key; run kdumpctl-py propagate")
    for key in ("kdump_pre", "kdump_post"):
        prog: tuple[str, ...] = getattr(cfg, key)
        if prog and not os.access(view.path(prog[0]), os.X_OK):
            problems.append(f"{key} {prog[0]}: not an executable file")
    return problems
