"""`kdumpctl-py config check [FILE]` and `kdumpctl-py config show`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from kdumpctl_py.journal import warn

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("config", help="check or show the configuration (kdumpctl-py.conf(5))")
    cmds = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = cmds.add_parser("check", help="read a configuration file and report its first error")
    c.add_argument("file", nargs="?", metavar="FILE", type=nonempty,
                   help="file to check (default: KDUMPCTL_CONFIG or "
                   "/etc/kdumpctl-py/kdump.conf)")
    c.set_defaults(func=run_check)
    s = cmds.add_parser("show", help="print the configuration in force, defaults marked")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=run_show)


def run_check(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.config.parse import default_location
    from kdumpctl_py.config.render import machine_problems
    from kdumpctl_py.errors import UsageError

    view = open_view(args)
    cfg = read_config(view, args.file)
    where = cfg.source or f"{default_location(view)} does not exist: the defaults"
    for warning in cfg.warnings:
        warn(warning)
    if args.file is None:
        problems = machine_problems(cfg, view)
        if problems:  # a configuration the machine cannot honour is bad input: exit 2
            raise UsageError(f"{cfg.source or where}: " + "; ".join(problems))
    print(f"{where}: ok")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.config.parse import default_location
    from kdumpctl_py.config.render import show

    view = open_view(args)
    cfg = read_config(view)
    if args.json:
        from kdumpctl_py.vocabulary import SCHEMA

        print(json.dumps({"schema": SCHEMA, **asdict(cfg)}, indent=2, sort_keys=True))
    else:
        print(show(cfg, default_location(view)))
    return 0
