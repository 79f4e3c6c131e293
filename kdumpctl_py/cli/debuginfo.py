"""`kdumpctl-py debuginfo`: the vmlinux with DWARF that belongs to a dump.

`find` says which file would be used (and why others are not); `fetch`
downloads Debian's -dbg package for the dump's kernel and keeps its vmlinux.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    from kdumpctl_py.cli import nonempty

    p = sub.add_parser("debuginfo", help="find or download the vmlinux with DWARF for a dump")
    dsub = p.add_subparsers(dest="debuginfo_command", metavar="ACTION", required=True)

    f = dsub.add_parser(
        "fetch",
        help="download Debian's linux-image-RELEASE-dbg for a dump and keep only its vmlinux",
        description="Download the dump's kernel's -dbg package with apt-get (for the dump's "
        "architecture, whatever this machine's), extract only the vmlinux into "
        "~/.cache/kdumpctl-py/debuginfo/RELEASE/ and check its build ID against the dump.",
    )
    f.add_argument("vmcore", metavar="VMCORE")
    f.add_argument("--cache", metavar="DIR", type=nonempty,
                   help="debuginfo cache (default ~/.cache/kdumpctl-py/debuginfo)")
    f.set_defaults(func=run_fetch)

    d = dsub.add_parser("find", help="show which vmlinux matches a dump, and which do not")
    d.add_argument("vmcore", metavar="VMCORE")
    d.add_argument("--vmlinux", metavar="PATH", type=nonempty, help="check this file first")
    d.add_argument("--debug-dir", metavar="DIR", action="append", dest="debug_dirs", type=nonempty,
                   help="where debug files are installed, instead of /usr/lib/debug")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=run_find)


def run_fetch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kdumpctl_py.analyse.fetch import Fetcher, dump_kernel

    kernel = dump_kernel(args.vmcore)
    path = Fetcher(Path(args.cache) if args.cache else None).fetch(kernel)
    print(path)
    return 0


def run_find(args: argparse.Namespace) -> int:
    from kdumpctl_py.analyse.debuginfo import DEBUG_DIRS, find_vmlinux
    from kdumpctl_py.analyse.program import dump_arch, open_core

    prog, _fmt, info, _cut = open_core(args.vmcore)
    dirs = tuple(args.debug_dirs) if args.debug_dirs else DEBUG_DIRS
    found = find_vmlinux(info.build_id, info.osrelease, args.vmlinux, dirs, arch=dump_arch(prog))
    if args.json:
        from kdumpctl_py.vocabulary import SCHEMA

        print(json.dumps({
            "schema": SCHEMA,
            "release": found.release,
            "build_id": found.build_id,
            "vmlinux": found.vmlinux,
            "origin": found.origin,
            "checked": [{"path": c.path, "origin": c.origin, "verdict": c.verdict,
                         "build_id": c.build_id} for c in found.checked],
            "looked": list(found.looked),
        }, indent=2))
    else:
        print(f"dump: release {found.release or 'unknown'}, "
              f"build ID {found.build_id or 'none (kernel before 5.9)'}")
        for c in found.checked:
            print(f"  {c.verdict:<11} {c.path} ({c.origin})")
        if found.vmlinux:
            print(f"uses {found.vmlinux}")
        else:
            print("no matching vmlinux found; looked in:")
            for path in found.looked:
                print(f"  {path}")
            print(f"get it with: kdumpctl-py debuginfo fetch {args.vmcore}")
    return 0 if found.vmlinux else 1
