"""Capture the files a `SystemView` reads, so another machine's facts can be replayed.

A snapshot is what a user attaches to a bug report and what the tests run
against. /proc/kcore is cut down to its headers and notes (never memory), so
without /boot contents a snapshot stays well under 1 MiB.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdumpctl_py import __version__
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.view import DEFAULT_TARGET, META, SystemView
from kdumpctl_py.fileio import no_directory

FILES = (
    "/proc/iomem",
    "/proc/cmdline",
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/modules",
    "/proc/sys/kernel/kexec_load_disabled",
    "/proc/sys/kernel/kexec_load_limit_panic",
    "/proc/sys/kernel/kexec_load_limit_reboot",
    "/sys/kernel/kexec_loaded",
    "/sys/kernel/kexec_crash_loaded",
    "/sys/kernel/kexec_crash_size",
    "/sys/kernel/kexec/file_fdset_types",
    "/sys/kernel/kexec_file_fdset_types",
    "/sys/kernel/crash_elfcorehdr_size",
    "/sys/kernel/vmcoreinfo",
    "/sys/devices/system/cpu/possible",
    "/sys/devices/system/cpu/online",
    "/sys/devices/system/cpu/present",
    "/sys/devices/system/memory/crash_hotplug",
    "/sys/firmware/fdt",
    "/sys/kernel/security/lockdown",
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c",
    "/etc/os-release",
    "/usr/lib/os-release",
)
GLOBS = (
    "/sys/devices/system/cpu/cpu[0-9]*/crash_notes",
    "/sys/devices/system/cpu/cpu[0-9]*/crash_notes_size",
)


# Names that promise an archive this tool does not write; taken as a directory they would mislead.
OTHER_ARCHIVES = (".tar", ".tar.xz", ".tar.bz2", ".tar.zst", ".txz", ".tbz2", ".tzst", ".zip",
                  ".gz", ".xz", ".bz2", ".zst", ".7z")


def take_snapshot(out: str, live: SystemView, with_boot: bool = False) -> Path:
    """Write a snapshot of the live machine (`live`, its probes handed in by the shell) to
    directory `out`, or a .tar.gz if it ends so."""
    as_tar = out.endswith((".tar.gz", ".tgz"))
    if not as_tar and out.lower().endswith(OTHER_ARCHIVES):
        raise UsageError(f"{out}: a snapshot is a directory or a .tar.gz, not "
                         f"{Path(out).suffix}; give NAME.tar.gz or a name without that suffix")
    dest = Path(out)
    if dest.exists() and not (dest.is_dir() and not as_tar and not any(dest.iterdir())):
        raise KdumpError(f"{out} already exists; give a new name")
    if not dest.parent.is_dir():
        raise no_directory(dest)
    if not as_tar:
        _write_whole(dest, lambda partial: _fill(partial, live, with_boot))
        return dest
    with tempfile.TemporaryDirectory(prefix="kdumpctl-py-snap-") as tmp:
        work = Path(tmp) / (dest.name.removesuffix(".tar.gz").removesuffix(".tgz") or "snapshot")
        _fill(work, live, with_boot)
        _write_whole(dest, lambda partial: _tar(work, partial))
    return dest


def _fill(work: Path, live: SystemView, with_boot: bool) -> None:
    """Make the snapshot's directory `work`."""
    work.mkdir()
    _copy_files(live, work, with_boot)
    _write_meta(live, work)


def _tar(work: Path, out: Path) -> None:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(work, arcname=work.name)


def _write_whole(dest: Path, write: Callable[[Path], object]) -> None:
    """Write `dest` under a name of its own beside it (`write` makes it), renamed to `dest`
    when whole (over the empty directory it may be): a full disk or a refusal leaves
    nothing behind, and the error names `dest`, the file the user asked for, not that one."""
    partial = dest.with_name(dest.name + ".incomplete")
    try:
        write(partial)
        os.replace(partial, dest)
    except BaseException as e:
        if partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.strerror:
            raise OSError(e.errno, e.strerror, str(dest)) from None
        raise


def _put(work: Path, rel: str, data: bytes) -> None:
    target = work / rel.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _copy_files(live: SystemView, work: Path, with_boot: bool) -> None:
    paths = list(FILES)
    for pattern in GLOBS:
        paths.extend(sorted(glob.glob(pattern)))
    paths.append(f"/boot/config-{live.uname.release}")
    if not live.path(paths[-1]).exists():
        paths.append("/proc/config.gz")
    if with_boot:
        paths.extend(f"/boot/{name}" for name in live.boot_files)
    for rel in dict.fromkeys(paths):
        data = live.data(rel, limit=1 << 30)
        if data is not None:
            _put(work, rel, data)
    kcore = live.kcore
    if kcore is not None:
        with open("/proc/kcore", "rb") as f:
            _put(work, "/proc/kcore", f.read(kcore.skeleton_length))


def _kernel_headers(live: SystemView) -> dict[str, str]:
    """The head of the running kernel's image, which says how big it is once booted."""
    import base64

    out = {}
    for name in live.boot_files:
        if name.endswith(live.uname.release) and name.startswith(("vmlinuz", "Image", "vmlinux")):
            head = live.boot_header(name)
            if head:
                out[name] = base64.b64encode(head).decode("ascii")
    return out


def _write_meta(live: SystemView, work: Path) -> None:
    u = live.uname
    meta: dict[str, Any] = {
        "format": 1,
        "tool": f"kdumpctl-py {__version__}",
        "taken": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "uname": u._asdict(),
        "probes": live.probes,
        "boot": live.boot_files,
        "boot_headers": _kernel_headers(live),
        "modules": live.module_releases,
        "targets": {
            DEFAULT_TARGET: {
                "free_bytes": live.free_bytes(DEFAULT_TARGET),
                "dumps": [vars(d) for d in live.dumps(DEFAULT_TARGET)],
            }
        },
        "unknown": live.unknown,
    }
    (work / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
