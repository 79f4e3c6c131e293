"""Read kdump.conf text into a `Config`; every error names FILE:LINE."""

from __future__ import annotations

import errno
import os
import re
import shlex
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kdumpctl_py.config.settings import (
    COMPRESSIONS,
    DEFAULT_PATH,
    ENV_PATH,
    FAILURE_ACTIONS,
    FEDORA_IGNORED,
    FEDORA_ONLY,
    FILESYSTEMS,
    FINAL_ACTIONS,
    FORMATS,
    METHODS,
    Config,
    NfsTarget,
    SshTarget,
    Target,
    setting,
)
from kdumpctl_py.errors import UsageError

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

DEVICE_PREFIXES = ("LABEL=", "UUID=", "PARTUUID=", "PARTLABEL=")


class ConfigError(UsageError):
    """A line of the file is wrong; the message starts with FILE:LINE."""


def parse_text(text: str, source: str) -> Config:
    """The Config a kdump.conf's text describes (defaults for what it does not say)."""
    values: dict[str, Any] = {}
    seen: dict[str, int] = {}
    lines: list[tuple[str, int]] = []
    warnings: list[str] = []
    for number, raw in enumerate(text.split("\n"), 1):  # line numbers as editors count
        where = f"{source}:{number}"
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        if not words:
            continue
        name, args = words[0], words[1:]
        s = setting(name)
        if s is None and name in FEDORA_IGNORED:
            warnings.append(f"{where}: {name} is ignored: {FEDORA_IGNORED[name]}")
            continue
        if s is None:
            if name in FEDORA_ONLY:
                raise ConfigError(f"{where}: {name} is a Fedora kdump.conf directive that "
                                  "kdumpctl-py does not support")
            raise ConfigError(f"{where}: unknown directive {name!r}")
        if not s.repeat:
            for field in s.fields:
                if field in seen:
                    first = seen[field]
                    raise ConfigError(f"{where}: {name} sets {field.replace('_', ' ')}, "
                                      f"already set on line {first}")
        for field in s.fields:
            seen.setdefault(field, number)
        if not args:
            raise ConfigError(f"{where}: {name} needs {s.syntax}")
        try:
            values.update(_parse_one(s.name, name, args, values))
        except ValueError as e:
            raise ConfigError(f"{where}: {name}: {e}") from None
        lines.append((name, number))
    return replace(Config(), **values, source=source, lines=tuple(lines),
                   warnings=tuple(warnings))


def _one(args: list[str]) -> str:
    if len(args) != 1:
        raise ValueError(f"takes one argument, not {len(args)}")
    return args[0]


def _choice(args: list[str], choices: tuple[str, ...]) -> str:
    value = _one(args)
    if value not in choices:
        raise ValueError(f"{value!r} is not one of {'|'.join(choices)}")
    return value


def _int(value: str, low: int, high: int | None = None) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if n < low or (high is not None and n > high):
        raise ValueError(f"{n} is not between {low} and {high}" if high is not None
                         else f"{n} is less than {low}")
    return n


def _program(args: list[str]) -> tuple[str, ...]:
    if not args[0].startswith("/"):
        raise ValueError(f"{args[0]!r} is not an absolute path")
    return tuple(args)


def _parse_one(key: str, name: str, args: list[str], values: dict[str, Any]) -> dict[str, Any]:
    if key == "path":
        path = _one(args)
        if not path.startswith("/"):
            raise ValueError(f"{path!r} is not an absolute path")
        return {"path": os.path.normpath(path)}
    if key == FILESYSTEMS[0]:
        device = _one(args)
        if not (device.startswith("/dev/") or device.startswith(DEVICE_PREFIXES)):
            raise ValueError(f"{device!r} is not a /dev path, LABEL=, UUID=, PARTUUID= or "
                             "PARTLABEL=")
        return {"target": Target(name, device)}
    if key == "ssh":
        return {"target": parse_ssh(_one(args))}
    if key == "sshkey":
        key_path = _one(args)
        if not key_path.startswith("/"):
            raise ValueError(f"{key_path!r} is not an absolute path")
        return {"sshkey": os.path.normpath(key_path)}
    if key == "nfs":
        return {"target": parse_nfs(args)}
    if key == "core_collector":
        return parse_collector(args)
    if key == "dump_level":
        return {"dump_level": _int(_one(args), 0, 31)}
    if key == "compress":
        return {"compress": _choice(args, COMPRESSIONS)}
    if key == "format":
        return {"format": _choice(args, FORMATS)}
    if key == "failure_action":
        return {"failure_action": _choice(args, FAILURE_ACTIONS)}
    if key == "final_action":
        return {"final_action": _choice(args, FINAL_ACTIONS)}
    if key in ("kdump_pre", "kdump_post"):
        return {key: _program(args)}
    if key == "method":
        return {"method": _choice(args, METHODS)}
    if key == "keep":
        return {"keep": _int(_one(args), 0)}
    if key == "memory_limit":
        return {"memory_limit": _size(_one(args))}
    if key == "debuginfo_fetch":
        return {"debuginfo_fetch": _choice(args, ("yes", "no")) == "yes"}
    if key == "cmdline_append":
        return {key: values.get(key, ()) + tuple(args)}
    if key == "cmdline_remove":
        bad = [w for w in args if "=" in w or not w]
        if bad:
            raise ValueError(f"takes parameter names, not {bad[0]!r}")
        return {key: values.get(key, ()) + tuple(args)}
    raise AssertionError(f"no parser for {key}")  # pragma: no cover: the table and this agree


def _size(word: str) -> int:
    """A byte count with K/M/G/T, or auto (0)."""
    if word == "auto":
        return 0
    from kdumpctl_py.units import parse_size

    try:
        value = parse_size(word)
    except UsageError:
        raise ValueError(f"{word!r} is not a size (examples: 96M, 1G, auto)") from None
    if not value:
        raise ValueError("a memory limit of 0 bytes; say auto for the default")
    return value


HOST_RE = re.compile(r"^[A-Za-z0-9._-]+$|^[0-9A-Fa-f:.]+$")
USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")


def parse_ssh(spec: str) -> SshTarget:
    """user@host, user@host:port, user@[v6]:port or user@v6; nothing ssh could take for an
    option (a leading -) or that a shell would split."""
    user, at, host = spec.partition("@")
    if not at or not user or not host:
        raise ValueError(f"{spec!r} is not USER@HOST")
    if not USER_RE.match(user):
        raise ValueError(f"{user!r} is not a user name")
    port: int | None = None
    if host.startswith("["):
        host, close, rest = host[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise ValueError(f"{spec!r}: an IPv6 address is written [ADDRESS]:PORT")
        if rest:
            port = _int(rest[1:], 1, 65535)
    elif host.count(":") == 1:
        host, _, number = host.partition(":")
        port = _int(number, 1, 65535)
    if not host or host.startswith("-") or not HOST_RE.match(host):
        raise ValueError(f"{host!r} is not a host name or address")
    return SshTarget(user, host, port)


def parse_nfs(args: list[str]) -> NfsTarget:
    if len(args) > 2:
        raise ValueError(f"takes HOST:/EXPORT and at most one OPTIONS word, not {len(args)} "
                         "words")
    host, colon, export = args[0].partition(":")
    if not colon or not export.startswith("/") or not host or host.startswith("-"):
        raise ValueError(f"{args[0]!r} is not HOST:/EXPORT")
    options = args[1] if len(args) == 2 else ""
    if options.startswith("-") or " " in options:
        raise ValueError(f"{options!r} is not a comma-separated list of mount options")
    return NfsTarget(args[0], options)


def parse_collector(args: list[str]) -> dict[str, Any]:
    """makedumpfile's options as save options; anything without an equivalent is refused."""
    if os.path.basename(args[0]) != "makedumpfile":
        raise ValueError(f"only makedumpfile can be mapped, not {args[0]!r}")
    out: dict[str, Any] = {"compress": "none", "format": "kdump", "flat": False,
                           "dump_level": 0, "threads": 0}
    codec = {"c": "zlib", "l": "lzo", "z": "zstd"}
    chosen: list[str] = []
    rest = list(args[1:])
    while rest:
        word = rest.pop(0)
        if word.startswith("--"):
            opt, eq, value = word[2:].partition("=")
            if opt not in ("message-level", "num-threads"):
                raise ValueError(f"makedumpfile option --{opt} has no kdumpctl-py equivalent")
            if not eq:
                if not rest:
                    raise ValueError(f"--{opt} needs a value")
                value = rest.pop(0)
            n = _int(value, 0)
            if opt == "num-threads":
                out["threads"] = n
            continue
        if not word.startswith("-") or word == "-":
            raise ValueError(f"unexpected argument {word!r} (kdumpctl-py names the files)")
        flags = word[1:]
        while flags:
            flag, flags = flags[0], flags[1:]
            if flag in codec:
                chosen.append(flag)
                out["compress"] = codec[flag]
            elif flag == "E":
                out["format"] = "elf"
            elif flag == "F":
                out["flat"] = True
            elif flag == "d":
                value = flags or (rest.pop(0) if rest else "")
                flags = ""
                if not value:
                    raise ValueError("-d needs a dump level")
                if "," in value:
                    raise ValueError(f"-d {value}: retrying at several dump levels is not "
                                     "supported; give one")
                out["dump_level"] = _int(value, 0, 31)
            else:
                raise ValueError(f"makedumpfile option -{flag} has no kdumpctl-py equivalent")
    if len(chosen) > 1:
        raise ValueError(f"-{chosen[0]} and -{chosen[1]} choose two compressions")
    if chosen and out["format"] == "elf":
        raise ValueError(f"-E writes an uncompressed ELF dump; drop -{chosen[0]}")
    return out


def read_config(view: SystemView | None = None, path: str | None = None) -> Config:
    """The configuration in force: `path`, else KDUMPCTL_CONFIG, else the default file
    read through `view` (so rooted at --sysroot). A missing default file means the
    defaults; a file the user named must exist."""
    path = path or os.environ.get(ENV_PATH) or None
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise UsageError(f"{path}: no such configuration file") from None
        return _decode(data, path)
    if view is None:
        from kdumpctl_py.facts.view import SystemView

        view = SystemView("/")
    raw = view.data(DEFAULT_PATH)
    if raw is None:
        why = view.unknown.get(DEFAULT_PATH, "")
        if why == os.strerror(errno.ENOENT):
            return Config()
        raise UsageError(f"{DEFAULT_PATH}: {why or 'unreadable'}")
    return _decode(raw, default_location(view))


def default_location(view: SystemView) -> str:
    """Where the default file is looked for: DEFAULT_PATH, under --sysroot when given."""
    return DEFAULT_PATH if view.live else str(view.path(DEFAULT_PATH))


def _decode(data: bytes, source: str) -> Config:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not UTF-8 text: {e}") from None
    return parse_text(text, source)
