"""The dump disk: an ext4 image built and read with e2fsprogs, no mounts, no loop devices."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import HarnessError
from .proc import run

log = logging.getLogger("crash-cycle")


def make(image: Path, content: Path, size_mib: int) -> None:
    """A sparse ext4 image of `size_mib` holding the files under `content`.

    The guest's first kernel finds the kernel and initrd to load in /boot on it;
    the capture kernel writes the dump to /dumps.
    """
    image.unlink(missing_ok=True)
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "kdumpvm", "-d", content, image,
         f"{size_mib}M"])


def check(image: Path, log_path: Path) -> int:
    """Replay the journal and fix what a crash left, so debugfs reads the truth.

    debugfs does not replay the journal; the guest unmounts or remounts read-only
    before it stops, and e2fsck covers the cases where it could not.
    Returns e2fsck's exit status (0 clean, 1 fixed; higher is recorded, not fatal).
    """
    r = run(["e2fsck", "-f", "-y", image], check=False)
    log_path.write_text(r.stdout + r.stderr)
    if r.returncode > 1:
        log.warning("e2fsck exit status %d on the dump disk (see %s)", r.returncode, log_path)
    return r.returncode


def list_root(image: Path) -> list[str]:
    r = run(["debugfs", "-R", "ls -p /", image])
    names = []
    for line in r.stdout.splitlines():
        fields = line.strip("/").split("/")
        if len(fields) >= 5 and fields[4] not in (".", "..", "lost+found", ""):
            names.append(fields[4])
    return names


def read_back(image: Path, names: list[str], dest: Path) -> list[str]:
    """Copy top-level files/directories out of the image into `dest` (debugfs rdump).

    Returns the names that were present.
    """
    dest.mkdir(parents=True, exist_ok=True)
    present = [n for n in names if n in set(list_root(image))]
    for name in present:
        r = run(["debugfs", "-R", f"rdump /{name} {dest}", image], check=False)
        if not (dest / name).exists():
            raise HarnessError(f"debugfs could not read /{name} back: {r.stderr.strip()[-500:]}")
    # rdump keeps the guest's modes; make everything readable to the host user.
    for root, dirs, files in os.walk(dest):
        for n in dirs:
            os.chmod(os.path.join(root, n), 0o755)
        for n in files:
            p = os.path.join(root, n)
            if not os.path.islink(p):
                os.chmod(p, 0o644)
    return present
