"""Where downloads and built pieces live between runs: outside git, keyed by versions."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """`$KDUMPCTL_VM_CACHE`, else `~/.cache/kdumpctl-py/vm` (XDG_CACHE_HOME honoured)."""
    env = os.environ.get("KDUMPCTL_VM_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "kdumpctl-py" / "vm"


@contextlib.contextmanager
def building_dir(final: Path) -> Iterator[Path]:
    """Yield a scratch directory that becomes `final` only if the block succeeds.

    A half-built cache entry is never visible, and two runs racing to build the
    same entry both succeed (the loser's copy is dropped).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp made it private
        try:
            tmp.rename(final)
        except OSError:
            if not final.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
