"""The words of kdump.conf: a parser and a printer for each kind of value.

Each row of `settings.SETTINGS` names the two it uses, so reading a file (`parse`),
`config show` (`render`) and the manual page (`man`) follow one table. A parser
takes the directive's name, its arguments and what earlier lines set, and returns
the `Config` fields it sets (ValueError says what is wrong); a printer returns the
directive's line for a `Config`, or None when it has nothing to say.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from typing import Any

from kdumpctl_py.config.model import Config, NfsTarget, SshTarget, Target
from kdumpctl_py.errors import UsageError

Parse = Callable[[str, list[str], dict[str, Any]], dict[str, Any]]
Show = Callable[[Config], "str | None"]

DEVICE_PREFIXES = ("LABEL=", "UUID=", "PARTUUID=", "PARTLABEL=")


def one(args: list[str]) -> str:
    if len(args) != 1:
        raise ValueError(f"takes one argument, not {len(args)}")
    return args[0]


def integer(value: str, low: int, high: int | None = None) -> int:
    try:
        n = int(value, 10)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if n < low or (high is not None and n > high):
        raise ValueError(f"{n} is not between {low} and {high}" if high is not None
                         else f"{n} is less than {low}")
    return n



def absolute(word: str) -> str:
    if not word.startswith("/"):
        raise ValueError(f"{word!r} is not an absolute path")
    return os.path.normpath(word)


def memory_limit(word: str) -> int:
    """memory_limit and save --memory-limit: a byte count with K/M/G/T, or auto (0); one
    below MIN_LIMIT is refused, since the interpreter alone would not fit in it."""
    if word == "auto":
        return 0
    from kdumpctl_py.capture.budget import MIN_LIMIT
    from kdumpctl_py.units import parse_size

    try:
        value = parse_size(word)
    except UsageError:
        raise ValueError(f"{word!r} is not a size (examples: 96M, 1G, auto)") from None
    if value < MIN_LIMIT:
        raise ValueError(f"{word!r} is below what a save needs; give at least "
                         f"{MIN_LIMIT >> 20}M, or auto")
    return value


def field(key: str, convert: Callable[[str], object]) -> Parse:
    """A directive that takes one word and sets one field."""
    return lambda name, args, values: {key: convert(one(args))}


def choice(key: str, choices: tuple[str, ...]) -> Parse:
    def convert(word: str) -> str:
        if word not in choices:
            raise ValueError(f"{word!r} is not one of {'|'.join(choices)}")
        return word
    return field(key, convert)


def yes_no(key: str) -> Parse:
    pick = choice(key, ("yes", "no"))
    return lambda name, args, values: {key: pick(name, args, values)[key] == "yes"}


def program(key: str) -> Parse:
    """PROGRAM [ARG...], kept as an argument vector."""
    def parse(name: str, args: list[str], values: dict[str, Any]) -> dict[str, Any]:
        absolute(args[0])
        return {key: tuple(args)}
    return parse


def accumulate(key: str, check: Callable[[str], None] | None = None) -> Parse:
    """A repeatable directive whose words add up over its lines."""
    def parse(name: str, args: list[str], values: dict[str, Any]) -> dict[str, Any]:
        for word in args:
            if check:
                check(word)
        return {key: values.get(key, ()) + tuple(args)}
    return parse


def parameter_name(word: str) -> None:
    if "=" in word or not word:
        raise ValueError(f"takes parameter names, not {word!r}")


def local_target(name: str, args: list[str], values: dict[str, Any]) -> dict[str, Any]:
    device = one(args)
    if not (device.startswith("/dev/") or device.startswith(DEVICE_PREFIXES)):
        raise ValueError(f"{device!r} is not a /dev path, LABEL=, UUID=, PARTUUID= or "
                         "PARTLABEL=")
    return {"target": Target(name, device)}


def ssh_target(name: str, args: list[str], values: dict[str, Any]) -> dict[str, Any]:
    return {"target": parse_ssh(one(args))}


def nfs_target(name: str, args: list[str], values: dict[str, Any]) -> dict[str, Any]:
    return {"target": parse_nfs(args)}


def collector(name: str, args: list[str], values: dict[str, Any]) -> dict[str, Any]:
    return parse_collector(args)


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
            port = integer(rest[1:], 1, 65535)
    elif host.count(":") == 1:
        host, _, number = host.partition(":")
        port = integer(number, 1, 65535)
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
    chosen: list[str] = []  # the compression flags given
    rest = list(args[1:])
    while rest:
        word = rest.pop(0)
        if word.startswith("--"):
            _long_option(word[2:], rest, out)
        elif word.startswith("-") and word != "-":
            _short_options(word[1:], rest, out, chosen)
        else:
            raise ValueError(f"unexpected argument {word!r} (kdumpctl-py names the files)")
    if len(chosen) > 1:
        raise ValueError(f"-{chosen[0]} and -{chosen[1]} choose two compressions")
    if chosen and out["format"] == "elf":
        raise ValueError(f"-E writes an uncompressed ELF dump; drop -{chosen[0]}")
    return out


def _long_option(word: str, rest: list[str], out: dict[str, Any]) -> None:
    """--num-threads N (kept) or --message-level N (ignored), `=N` or the next word."""
    opt, eq, value = word.partition("=")
    if opt not in ("message-level", "num-threads"):
        raise ValueError(f"makedumpfile option --{opt} has no kdumpctl-py equivalent")
    if not eq:
        if not rest:
            raise ValueError(f"--{opt} needs a value")
        value = rest.pop(0)
    n = integer(value, 0)
    if opt == "num-threads":
        out["threads"] = n


def _short_options(flags: str, rest: list[str], out: dict[str, Any],
                   chosen: list[str]) -> None:
    """A word of one-letter options (-czF, -d31 or -d 31)."""
    codec = {"c": "zlib", "l": "lzo", "z": "zstd"}
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
            out["dump_level"] = _dump_level(flags or (rest.pop(0) if rest else ""))
            return
        else:
            raise ValueError(f"makedumpfile option -{flag} has no kdumpctl-py equivalent")


def _dump_level(value: str) -> int:
    if not value:
        raise ValueError("-d needs a dump level")
    if "," in value:
        raise ValueError(f"-d {value}: retrying at several dump levels is not supported; "
                         "give one")
    return integer(value, 0, 31)


def words(line: tuple[str, ...]) -> str:
    return " ".join(shlex.quote(w) for w in line)


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


def show_plain(key: str) -> Show:
    """The value as one word; nothing to say when it is unset (None)."""
    def show(cfg: Config) -> str | None:
        value = getattr(cfg, key)
        return None if value is None else f"{key} {shlex.quote(str(value))}"
    return show


def show_size(key: str) -> Show:
    return lambda cfg: f"{key} {size_word(getattr(cfg, key))}"


def show_yes_no(key: str) -> Show:
    return lambda cfg: f"{key} {'yes' if getattr(cfg, key) else 'no'}"


def show_words(key: str) -> Show:
    """An argument vector or accumulated words: nothing to say when empty."""
    def show(cfg: Config) -> str | None:
        value: tuple[str, ...] = getattr(cfg, key)
        return f"{key} {words(value)}" if value else None
    return show


def show_local(cfg: Config) -> str | None:
    t = cfg.target
    return f"{t.fstype} {shlex.quote(t.device)}" if isinstance(t, Target) else None


def show_ssh(cfg: Config) -> str | None:
    t = cfg.target
    return f"ssh {t.spec}" if isinstance(t, SshTarget) else None  # no shell characters


def show_nfs(cfg: Config) -> str | None:
    t = cfg.target
    if not isinstance(t, NfsTarget):
        return None
    return words(("nfs", t.export) + ((t.options,) if t.options else ()))


def show_collector(cfg: Config) -> str:
    return f"core_collector {collector_line(cfg)}"
