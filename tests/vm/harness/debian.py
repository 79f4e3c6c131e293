"""Debian packages for the guest: a private apt state per suite/arch, closures, downloads.

Nothing here touches the host's apt lists or dpkg database: apt runs with its
configuration, state and caches pointed into the harness cache, so any suite and
architecture can be fetched from a bookworm amd64 host without `dpkg --add-architecture`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aptsources import Mirrors, prepare_private, private_options, private_sources
from .cache import building_dir
from .config import Arch
from .errors import HarnessError
from .proc import run

log = logging.getLogger("crash-cycle")

# Package lists older than this are refreshed, so the kernel metapackage resolves
# to the archive's current ABI; a failed refresh falls back to the lists we have.
LISTS_MAX_AGE_S = 6 * 3600


@dataclass(frozen=True, order=True)
class Package:
    """One binary package at one version, as apt resolved it."""

    name: str
    version: str
    arch: str  # Debian architecture, or "all"

    @property
    def deb_name(self) -> str:
        """The file name `apt-get download` gives it (epoch colon escaped as %3a)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"

    @property
    def key(self) -> str:
        return f"{self.name}={self.version}"


@dataclass(frozen=True)
class Kernel:
    """The ABI-versioned kernel package the cloud metapackage points at today."""

    image: Package
    release: str  # uname -r, e.g. 6.1.0-28-cloud-arm64

    @property
    def dbg_name(self) -> str:
        return f"{self.image.name}-dbg"


class AptState:
    """apt-get/apt-cache against a private state directory for one suite and arch."""

    def __init__(self, root: Path, suite: str, arch: Arch, mirrors: Mirrors,
                 sources: str | None = None) -> None:
        """`sources` replaces the suite's usual deb822 text (suite, -updates, -security)."""
        self.dir = root / "apt" / f"{suite}-{arch.debian}"
        self.suite = suite
        self.arch = arch
        self.mirrors = mirrors
        if prepare_private(self.dir, sources or private_sources(mirrors, suite)):
            (self.dir / "updated").unlink(missing_ok=True)

    def options(self) -> list[str]:
        return private_options(self.dir, self.arch.debian, {
            "APT::Install-Recommends": "false", "APT::Install-Suggests": "false"})

    def update(self, force: bool = False) -> None:
        """Refresh the private package lists when missing, stale or forced.

        Under a lock, as the VM tier builds roots in the background while its tests
        run: apt-get refuses a second update of the same lists instead of waiting.
        """
        stamp = self.dir / "updated"
        with (self.dir / "update.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fresh = stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE_S
            if fresh and not force:
                return
            try:
                run(["apt-get", *self.options(), "-q", "update"], timeout=900)
            except HarnessError as e:
                if stamp.exists():
                    log.warning("apt-get update failed, using the lists from before: %s", e)
                    return
                raise
            stamp.touch()

    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """apt's answers only change when the lists do: keep them until the next update.

        Saves about ten seconds of apt-cache/apt-get -s per run.
        """
        stamp = self.dir / "updated"
        version = f"{stamp.stat().st_mtime_ns if stamp.exists() else 0}"
        path = self.dir / "answers.json"
        try:
            memo = json.loads(path.read_text())
        except (OSError, ValueError):
            memo = {}
        if memo.get("lists") != version:
            memo = {"lists": version, "answers": {}}
        if key not in memo["answers"]:
            memo["answers"][key] = compute()
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(memo))
            tmp.rename(path)
        return memo["answers"][key]

    def candidate(self, name: str) -> Package | None:
        """The version apt would install, or None when the suite has no such package."""
        found = self._memo(f"candidate {name}", lambda: self._candidate(name))
        return Package(*found) if found else None

    def _candidate(self, name: str) -> list[str] | None:
        r = run(["apt-cache", *self.options(), "show", "--no-all-versions", name], check=False)
        if r.returncode != 0 or not r.stdout.strip():
            return None
        fields = _control_fields(r.stdout)
        return [name, fields["version"], fields["architecture"]]

    def depends(self, name: str) -> str:
        def compute() -> str:
            r = run(["apt-cache", *self.options(), "show", "--no-all-versions", name])
            return _control_fields(r.stdout).get("depends", "")

        result: str = self._memo(f"depends {name}", compute)
        return result

    def kernel(self) -> Kernel:
        """Follow linux-image-cloud-ARCH to today's ABI package (never a pinned ABI)."""
        meta = self.arch.kernel_metapackage
        deps = self.depends(meta)
        m = re.search(r"(linux-image-[^\s,(|]+)", deps)
        if not m:
            raise HarnessError(f"{meta} in {self.suite} depends on no linux-image: {deps!r}")
        image = self.candidate(m.group(1))
        if image is None:
            raise HarnessError(f"{meta} names {m.group(1)}, which {self.suite} does not have")
        release = image.name.removeprefix("linux-image-")
        return Kernel(image=image, release=release)

    def resolve(self, roots: list[str]) -> list[Package]:
        """The dependency closure of `roots` as apt would install it on an empty system."""
        found = self._memo("resolve " + " ".join(sorted(roots)), lambda: self._resolve(roots))
        return [Package(*p) for p in found]

    def _resolve(self, roots: list[str]) -> list[tuple[str, str, str]]:
        r = run(["apt-get", *self.options(), "-s", "-q", "install", *roots])
        pkgs = []
        for line in r.stdout.splitlines():
            m = re.match(r"Inst (\S+) \((\S+) .*\[(\S+)\]\)", line)
            if m:
                pkgs.append((m.group(1).split(":")[0], m.group(2), m.group(3)))
        if not pkgs:
            raise HarnessError(f"apt resolved nothing for {roots}:\n{r.stdout[-2000:]}")
        return sorted(pkgs)

    def download(self, pkgs: list[Package], dest: Path) -> dict[Package, Path]:
        """Fetch the .debs that `dest` does not hold yet (apt checks their hashes)."""
        dest.mkdir(parents=True, exist_ok=True)
        missing = [p for p in pkgs if not (dest / p.deb_name).exists()]
        if missing:
            log.info("downloading %d packages for %s/%s", len(missing), self.suite,
                     self.arch.debian)
            # Into a scratch directory first: an interrupted download never leaves a
            # truncated .deb under its final name.
            tmp = Path(tempfile.mkdtemp(prefix=".download.", dir=dest))
            try:
                run(["apt-get", *self.options(), "-q", "download",
                     *[f"{p.name}={p.version}" for p in missing]], cwd=tmp, timeout=3600)
                for p in missing:
                    if (tmp / p.deb_name).exists():
                        (tmp / p.deb_name).rename(dest / p.deb_name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        paths = {}
        for p in pkgs:
            path = dest / p.deb_name
            if not path.exists():
                raise HarnessError(f"apt-get download did not produce {path}")
            paths[p] = path
        return paths


def _control_fields(text: str) -> dict[str, str]:
    """Fields of the first stanza of apt-cache show output, keys lower-cased."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.split("\n\n", 1)[0].splitlines():
        if line[:1].isspace() and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
    return fields


def extract(deb: Path, pkg: Package, root: Path) -> Path:
    """Unpack a .deb once into the cache (dpkg-deb -x; no maintainer scripts run)."""
    final = root / "pkgs" / pkg.arch / pkg.deb_name.removesuffix(".deb")
    if final.exists():
        return final
    with building_dir(final) as tmp:
        run(["dpkg-deb", "-x", deb, tmp])
    return final


def extract_members(deb: Path, pattern: str, dest: Path) -> None:
    """Extract only the members matching a tar wildcard, without unpacking the rest.

    Used for the -dbg package, which is mostly module debug info we do not need.
    """
    dest.mkdir(parents=True, exist_ok=True)
    feed = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert feed.stdout is not None
    try:
        tar = subprocess.run(
            ["tar", "-x", "-C", str(dest), "--wildcards", pattern],
            stdin=feed.stdout, capture_output=True, text=True, check=False,
        )
    finally:
        feed.stdout.close()
        feed_rc = feed.wait()
    if tar.returncode != 0 or feed_rc not in (0, -13):  # -13: SIGPIPE once tar has enough
        raise HarnessError(
            f"extracting {pattern} from {deb.name} failed "
            f"(tar {tar.returncode}, dpkg-deb {feed_rc}): {tar.stderr.strip()[-500:]}"
        )
