"""The vmlinux with DWARF for the guest kernel, from Debian's -dbg package.

The package is large (about 260-290 MB for the cloud flavours) and almost all
module debug info; only the vmlinux is extracted and kept, keyed by package
version, and the .deb is deleted afterwards.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .cache import building_dir
from .debian import AptState, Kernel, extract_members
from .errors import HarnessError

log = logging.getLogger("crash-cycle")


def vmlinux(apt: AptState, kernel: Kernel, cache: Path) -> Path:
    """Path of the cached vmlinux for `kernel`, downloading the -dbg package if needed."""
    dbg = apt.candidate(kernel.dbg_name)
    if dbg is None:
        raise HarnessError(f"{apt.suite} has no {kernel.dbg_name}",
                           hint="the archive may have moved on: rerun to pick the new ABI")
    if dbg.version != kernel.image.version:
        raise HarnessError(
            f"{kernel.dbg_name} is version {dbg.version}, the kernel {kernel.image.version}")
    final = cache / "vmlinux" / dbg.deb_name.removesuffix(".deb")
    target = final / "vmlinux"
    if target.exists():
        return target
    log.info("fetching %s (large, once per kernel version)", dbg.name)
    debs = cache / "debs-dbg" / apt.arch.debian
    path = apt.download([dbg], debs)[dbg]
    with building_dir(final) as tmp:
        extract_members(path, "./usr/lib/debug/*vmlinux*", tmp / "x")
        found = [p for p in (tmp / "x").rglob("vmlinux*")
                 if p.is_file() and not p.is_symlink()]
        if not found:
            raise HarnessError(f"no vmlinux inside {path.name}")
        max(found, key=lambda p: p.stat().st_size).rename(tmp / "vmlinux")
        shutil.rmtree(tmp / "x")
    path.unlink()
    return target
