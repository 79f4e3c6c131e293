"""Running the initramfs generator plan/initramfs.py chose: the one place that writes
kdumpctl-py's capture initramfs into /boot, or removes it.

The generator writes beside the old image under a temporary name, which is
renamed over it only when the generator succeeded: a failed build leaves the
previous initramfs (or none, and then `start` loads the system's), never a
partial one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.fileio import fsync_dir
from kdumpctl_py.journal import warn
from kdumpctl_py.plan.bootfiles import own_initrd_path
from kdumpctl_py.plan.initramfs import (
    INITRAMFS_TOOLS_CONF,
    OVERRIDE_NAME,
    OVERRIDES,
    InitramfsPlan,
    command,
    plan_initramfs,
)
from kdumpctl_py.units import format_bytes

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView


def build(plan: InitramfsPlan, conf_source: str = INITRAMFS_TOOLS_CONF) -> str:
    """Build it; the line saying what was built. initramfs-tools gets a copy of the
    system's configuration (`conf_source`) with OVERRIDES last in conf.d."""
    out = Path(plan.output)
    partial = out.with_name(f".{out.name}.new")
    with tempfile.TemporaryDirectory(prefix="kdumpctl-py-initramfs-") as tmp:
        conf = Path(tmp) / "initramfs-tools"
        if plan.generator == "initramfs-tools":
            shutil.copytree(conf_source, conf, symlinks=True)
            (conf / "conf.d").mkdir(exist_ok=True)
            (conf / "conf.d" / OVERRIDE_NAME).write_text(OVERRIDES)
        argv = command(plan, str(conf), str(partial))
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
        except OSError as e:
            raise KdumpError(f"cannot run {argv[0]}: {e.strerror or e}") from None
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise KdumpError(f"{argv[0]} failed building {out} (exit {done.returncode}): {last}")
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, out)
    fsync_dir(out.parent)
    return (f"built {out} ({plan.generator}, {plan.compression}, "
            f"{format_bytes(out.stat().st_size)}): {plan.why}")


def remove(release: str) -> str:
    path = Path(own_initrd_path(release))
    if not path.exists():
        return f"no {path} to remove"
    path.unlink()
    fsync_dir(path.parent)
    return f"removed {path}"


def refresh(view: SystemView, release: str | None = None) -> None:
    """Build our initramfs when it is missing or older than what it is made of; a failure
    is a warning, since `start` then loads the system's initrd (or a previous one of ours)."""
    plan = plan_initramfs(view, release)
    if plan is None or plan.why is None:
        return
    try:
        print(build(plan))
    except KdumpError as e:
        warn(f"{e}; the capture kernel gets "
             f"{'the previous one' if Path(plan.output).exists() else 'the system initrd'}")
