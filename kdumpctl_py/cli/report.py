"""`kdumpctl-py report`: what kdumpctl-py-report.service runs at boot after a crash."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands
    from kdumpctl_py.config.model import Config

# Where the report mounts an NFS target's export while it reads the dumps there.
NFS_MOUNT = "/run/kdumpctl-py/report"


def register(sub: Commands) -> None:
    p = sub.add_parser(
        "report", help="analyse the dumps not analysed yet and report each to the journal",
        description="Analyse each dump under the configured dump directory that has no "
        "analysis.json (the dumps saved since the last report: after a crash, the "
        "one saved before this boot), write analysis.json beside it and one journal "
        "message per dump with MESSAGE_ID, DUMP_PATH, PANIC, SIGNATURE, KERNEL_RELEASE and "
        "BUILD_ID (printed on standard output without systemd-python). Without drgn the "
        "analysis is the kernel log's; with it, DWARF when a matching vmlinux is installed "
        "(and fetched first with `debuginfo fetch` when the configuration says "
        "`debuginfo_fetch yes`). An NFS target's export is mounted for the time it takes; "
        "an ssh target's dumps are analysed on the server (triage).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.config.model import NfsTarget, is_network
    from kdumpctl_py.service.target import first_kernel_dump_dir, under

    view = open_view(args)
    cfg = read_config(view)
    if isinstance(cfg.target, NfsTarget):
        from kdumpctl_py.service.actions import System
        from kdumpctl_py.service.capture import mount_args

        machine = System()
        machine.mount(*mount_args(cfg.target, machine), NFS_MOUNT)
        try:
            return report(cfg, under(NFS_MOUNT, cfg.path), NFS_MOUNT)
        finally:
            machine.umount(NFS_MOUNT)
    where = first_kernel_dump_dir(cfg, view)
    if where is None or is_network(cfg):
        print("kdumpctl-py: the dumps are not on this machine (an ssh target's server "
              "analyses them with triage, or the target is not mounted): nothing to report "
              "here")
        return 0
    return report(cfg, view.path(where).as_posix())


def report(cfg: Config, directory: str, mountpoint: str | None = None) -> int:
    """Analyse and report each dump under `directory` that has no analysis.json; under an
    NFS `mountpoint`, the journal names the dump as the server's export does."""
    import os

    from kdumpctl_py import journal
    from kdumpctl_py.analyse.stored import load_or_analyse
    from kdumpctl_py.service import notify
    from kdumpctl_py.service.report import message, unreported
    from kdumpctl_py.service.target import shown
    from kdumpctl_py.triage.found import find

    todo = unreported(find([directory])) if os.path.isdir(directory) else []
    for dump in todo:
        if cfg.debuginfo_fetch:
            fetch_debuginfo(dump.vmcore)
        try:
            analysis, error = load_or_analyse(dump.vmcore)[0], None
        except Exception as e:  # noqa: BLE001 - a dump that cannot be read is reported so
            analysis, error = None, f"{type(e).__name__}: {e}"
        m = message(dump, analysis, error,
                    shown(cfg, dump.vmcore, mountpoint) if mountpoint else dump.vmcore)
        if not journal.event(m.text, notify.DUMP_REPORT, m.priority, echo=False, **m.fields):
            print(f"kdumpctl-py: {m.text}", flush=True)
    if not todo:
        print("kdumpctl-py: no dump to report")
    return 0


def fetch_debuginfo(vmcore: str) -> None:
    """Debian's vmlinux with DWARF for the dump, into the cache analyse searches, unless a
    matching one is installed; a failure (no drgn, no network, no such package) leaves
    the analysis to kallsyms and the log, and says why."""
    from kdumpctl_py.errors import KdumpError

    try:
        from kdumpctl_py.analyse.debuginfo import DEBUG_DIRS, find_vmlinux
        from kdumpctl_py.analyse.fetch import Fetcher, dump_kernel
        from kdumpctl_py.analyse.program import dump_arch, open_core

        prog, _fmt, info, _cut = open_core(vmcore)
        if find_vmlinux(info.build_id, info.osrelease, None, DEBUG_DIRS,
                        arch=dump_arch(prog)).vmlinux:
            return
        Fetcher(None).fetch(dump_kernel(vmcore))
    except (KdumpError, ImportError, OSError) as e:
        print(f"kdumpctl-py: no debug info fetched for {vmcore}: {e}", flush=True)
