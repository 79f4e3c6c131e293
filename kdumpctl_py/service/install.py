"""`kdumpctl-py install`: the units, udev rule, kernel hooks (kernel-install plugins and
/etc/kernel/postinst.d, postrm.d), man pages and a default configuration, where the
distribution looks for them.

The files ship in the repository's units/ and man/ and, in a wheel, as data files
under <prefix>/share/kdumpctl-py/. The units name /usr/bin/kdumpctl-py; install
rewrites that to the executable's real place (--bindir).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from kdumpctl_py.config.model import Config
from kdumpctl_py.config.render import show
from kdumpctl_py.config.settings import DEFAULT_PATH
from kdumpctl_py.errors import KdumpError

SHIPPED_BIN = "/usr/bin/kdumpctl-py"
UNIT_DIR = "/usr/lib/systemd/system"
PLACES = {
    ".service": (UNIT_DIR, 0o644),
    ".timer": (UNIT_DIR, 0o644),
    ".rules": ("/usr/lib/udev/rules.d", 0o644),
    ".install": ("/usr/lib/kernel/install.d", 0o755),
    # Debian's kernel packages run these directories' hooks; installed without the suffix.
    ".postinst": ("/etc/kernel/postinst.d", 0o755),
    ".postrm": ("/etc/kernel/postrm.d", 0o755),
}
HOOK_SUFFIXES = (".postinst", ".postrm")


@dataclass(frozen=True)
class Item:
    dest: str  # absolute path on the installed system
    data: bytes
    mode: int
    keep_existing: bool = False  # the configuration: never overwritten


def data_dir(kind: str) -> Path:
    """units/ or man/: the checkout's own (source or editable install), else the wheel's."""
    here = Path(__file__).resolve().parents[2] / kind
    if here.is_dir():
        return here
    installed = Path(sysconfig.get_path("data")) / "share" / "kdumpctl-py" / kind
    if installed.is_dir():
        return installed
    raise KdumpError(f"cannot find kdumpctl-py's {kind}/ (looked in {here} and {installed})")


def default_config() -> bytes:
    head = ("# kdumpctl-py configuration: see kdumpctl-py.conf(5).\n"
            "# Every directive is shown with its default; uncomment to change one.\n")
    body = "\n".join(line if line.startswith("#") else "#" + line.split("  # ")[0]
                     for line in show(Config()).splitlines()[1:])
    return (head + body + "\n").encode()


def plan_install(bindir: str) -> list[Item]:
    items = []
    units = data_dir("units")
    for path in sorted(units.iterdir()):
        place = PLACES.get(path.suffix)
        if place is None:
            continue
        data = path.read_bytes().replace(SHIPPED_BIN.encode(),
                                         f"{bindir.rstrip('/')}/kdumpctl-py".encode())
        name = path.stem if path.suffix in HOOK_SUFFIXES else path.name
        items.append(Item(f"{place[0]}/{name}", data, place[1]))
    for path in sorted(data_dir("man").iterdir()):
        section = path.suffix.lstrip(".")
        if section.isdigit():
            items.append(Item(f"/usr/share/man/man{section}/{path.name}", path.read_bytes(),
                              0o644))
    items.append(Item(DEFAULT_PATH, default_config(), 0o644, keep_existing=True))
    return items


def default_bindir(prefix: str) -> str:
    """Where kdumpctl-py runs from: this interpreter's script for the live system,
    /usr/bin for another root."""
    if os.path.realpath(prefix) != "/":
        return "/usr/bin"
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "kdumpctl-py":
        return os.path.dirname(argv0)
    return "/usr/bin"


def install(items: list[Item], prefix: str, dry_run: bool) -> list[str]:
    """Write the items under `prefix`; returns one line per item saying what happened."""
    from kdumpctl_py.fileio import replace_atomically

    lines = []
    for item in items:
        target = Path(prefix) / item.dest.lstrip("/")
        if item.keep_existing and target.exists():
            lines.append(f"kept      {target} (exists; never overwritten)")
            continue
        if target.exists() and target.read_bytes() == item.data:
            lines.append(f"unchanged {target}")
            continue
        lines.append(f"{'would write' if dry_run else 'wrote'} {target}")
        if dry_run:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(target, item.data, backup=False)
        os.chmod(target, item.mode)
    return lines
