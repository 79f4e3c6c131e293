"""Read kdump.conf text into a `Config`; every error names FILE:LINE."""

from __future__ import annotations

import errno
import os
import shlex
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kdumpctl_py.config.model import Config
from kdumpctl_py.config.settings import (
    DEFAULT_PATH,
    ENV_PATH,
    FEDORA_IGNORED,
    FEDORA_ONLY,
    Setting,
    setting,
)
from kdumpctl_py.errors import UsageError

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

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
            raise ConfigError(f"{where}: {_unknown(name)}")
        _set_once(s, name, where, number, seen)
        if not args:
            raise ConfigError(f"{where}: {name} needs {s.syntax}")
        try:
            values.update(s.parse(name, args, values))
        except ValueError as e:
            raise ConfigError(f"{where}: {name}: {e}") from None
        lines.append((name, number))
    return replace(Config(), **values, source=source, lines=tuple(lines),
                   warnings=tuple(warnings))


def _unknown(name: str) -> str:
    if name in FEDORA_ONLY:
        return f"{name} is a Fedora kdump.conf directive that kdumpctl-py does not support"
    return f"unknown directive {name!r}"


def _set_once(s: Setting, name: str, where: str, number: int, seen: dict[str, int]) -> None:
    """Note the fields `name` sets on line `number`; one set before is an error unless the
    directive may repeat."""
    if not s.repeat:
        for field in s.fields:
            if field in seen:
                raise ConfigError(f"{where}: {name} sets {field.replace('_', ' ')}, "
                                  f"already set on line {seen[field]}")
    for field in s.fields:
        seen.setdefault(field, number)


def read_config(view: SystemView | None = None, path: str | None = None) -> Config:
    """The configuration in force: `path`, else KDUMPCTL_CONFIG, else the default file
    read through `view` (so rooted at --sysroot). A missing default file means the
    defaults; a file the user named must exist."""
    path = path or os.environ.get(ENV_PATH) or None
    if path is not None:
        from kdumpctl_py.facts.view import MAX_READ

        try:
            with open(path, "rb") as f:
                data = f.read(MAX_READ + 1)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such configuration file") from None
        except OSError as e:
            raise UsageError(f"{path}: {e.strerror}") from None
        if len(data) > MAX_READ:  # the default file is read through the view, as limited
            raise UsageError(f"{path}: larger than {MAX_READ >> 20} MiB, not a configuration "
                             "file")
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
