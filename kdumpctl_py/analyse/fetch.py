"""`kdumpctl-py debuginfo fetch`: Debian's vmlinux with DWARF for a dump, into the cache.

Debian ships a kernel's DWARF as linux-image-RELEASE-dbg (some kernels as
linux-image-RELEASE-unsigned-dbg; apt-cache says which exists). The package
is large (about 260-290 MB for the cloud flavours, over 1.5 GB unpacked) and
almost all of it is module debug info, so only the vmlinux is extracted
(`dpkg-deb --fsys-tarfile | tar`), checked against the dump's build ID and
kept as ~/.cache/kdumpctl-py/debuginfo/RELEASE/vmlinux; the .deb is deleted.

The dump's own architecture decides the package's: an arm64 dump analysed
on an amd64 machine gets the arm64 package, through a private apt
configuration (apt.py) on this machine's Debian mirror. The suite is the
machine's own, or the one the kernel names ("+deb13" is trixie).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdumpctl_py.analyse import apt as aptmod
from kdumpctl_py.analyse.debuginfo import cache_root, cached_vmlinux, elf_build_id
from kdumpctl_py.errors import KdumpError, UsageError

# drgn's architecture (as report.arch spells it, uname's names) -> Debian's.
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el",
               "s390x": "s390x", "riscv64": "riscv64", "i386": "i386", "arm": "armhf"}
DBG_MEMBERS = "./usr/lib/debug/*vmlinux*"


@dataclass(frozen=True)
class DumpKernel:
    release: str
    build_id: str | None
    arch: str  # Debian's name
    version: str | None  # Debian package version, from "Linux version ... Debian 6.1.192-2"


def package_names(release: str) -> list[str]:
    return [f"linux-image-{release}-dbg", f"linux-image-{release}-unsigned-dbg"]


def debian_version(kernel_version: str | None) -> str | None:
    """The Debian package version in a kernel version string ("#1 SMP ... Debian 6.1.192-2")."""
    if not kernel_version:
        return None
    m = re.search(r"Debian (\S+)", kernel_version)
    return m.group(1) if m else None


def suite_of(release: str, version: str | None) -> str | None:
    """The Debian suite a kernel names ("6.12.41+deb13-amd64" -> trixie), if it does."""
    for text in (release, version or ""):
        m = re.search(r"\+deb(\d+)", text)
        if m and m.group(1) in aptmod.CODENAMES:
            return aptmod.CODENAMES[m.group(1)]
    return None


def pick(available: list[aptmod.Available], version: str | None) -> aptmod.Available | None:
    """The exact version the dump's kernel was, else the newest the archive offers."""
    if not available:
        return None
    if version is not None:
        for a in available:
            if a.version == version:
                return a
    return available[0]  # apt-cache show lists the candidate first


def dump_kernel(vmcore: str) -> DumpKernel:
    """Release, build ID, arch and Debian version of a dump, without debug info."""
    from kdumpctl_py.analyse.program import UNAME_ARCH, Opened, open_core

    prog, fmt, info, _cut = open_core(vmcore)
    if not info.osrelease:
        raise UsageError(f"{vmcore}: VMCOREINFO has no OSRELEASE")
    platform = prog.platform
    uname = UNAME_ARCH.get(platform.arch.name, "") if platform is not None else ""
    arch = DEBIAN_ARCH.get(uname)
    if arch is None:
        raise KdumpError(f"{vmcore}: no Debian architecture known for {uname or 'this dump'}")
    version = None
    try:
        from kdumpctl_py.analyse.debuginfo import Found
        from kdumpctl_py.analyse.kernlog import read_log
        from kdumpctl_py.analyse.nodwarf import version_from_log

        opened = Opened(prog, vmcore, fmt, info, Found(info.build_id, info.osrelease))
        version = debian_version(version_from_log(read_log(opened).lines))
    except KdumpError:
        pass
    return DumpKernel(info.osrelease, info.build_id, arch, version)


def host_arch(run: aptmod.Runner) -> str | None:
    try:
        r = run(["dpkg", "--print-architecture"], None)
    except FileNotFoundError:
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


class Fetcher:
    def __init__(self, cache: Path | None = None, run: aptmod.Runner = aptmod.run_command,
                 say: Callable[[str], None] | None = None, etc: Path = Path("/etc/apt"),
                 os_release: Path = Path("/etc/os-release")) -> None:
        self.cache = cache or cache_root()
        # the default cache shares ~/.cache/kdumpctl-py/apt (the VM harness's too); a cache
        # the user named is the only directory written
        self.apt_root = (cache or cache_root().parent) / "apt"
        self.run = run
        self.say = say or (lambda msg: print(f"kdumpctl-py: {msg}", file=sys.stderr))
        self.etc = etc
        self.os_release = os_release

    def fetch(self, kernel: DumpKernel) -> Path:
        """The cached vmlinux for `kernel`, downloading it when not cached yet."""
        if self.cache.exists() and not self.cache.is_dir():
            raise UsageError(f"--cache {self.cache} is not a directory")
        target = cached_vmlinux(kernel.release, self.cache)
        if target.is_file() and self._matches(target, kernel):
            self.say(f"{target} is already cached and matches the dump")
            return target
        apt, available = self._find(kernel)
        chosen = pick(available, kernel.version)
        assert chosen is not None
        if kernel.version and chosen.version != kernel.version:
            self.say(f"the archive has {chosen.name} {chosen.version}, not {kernel.version} "
                     "that the dump's kernel was built as; trying it (the build ID decides)")
        size = f" ({chosen.size / (1 << 20):.0f} MiB)" if chosen.size else ""
        self.say(f"downloading {chosen.name} {chosen.version} [{chosen.arch}]{size}")
        work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=self._mkdir(self.cache)))
        try:
            name = chosen.name if apt.private is None else f"{chosen.name}:{chosen.arch}"
            deb = apt.download(name, chosen.version, work)
            self.say(f"extracting the vmlinux from {deb.name}")
            vmlinux = self.extract(deb, work / "x")
            deb.unlink()
            have = elf_build_id(vmlinux)
            if kernel.build_id and have != kernel.build_id:
                raise KdumpError(
                    f"{chosen.name} {chosen.version} has build ID {have}, the dump "
                    f"{kernel.build_id}: the dump's kernel is another upload than the archive "
                    "now offers; find that version's -dbg package and pass its vmlinux with "
                    "--vmlinux")
            self._mkdir(target.parent)
            os.replace(vmlinux, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.say(f"saved {target}" + (" (build ID matches the dump)" if kernel.build_id else ""))
        return target

    @staticmethod
    def _mkdir(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def _matches(path: Path, kernel: DumpKernel) -> bool:
        try:
            return kernel.build_id is None or elf_build_id(path) == kernel.build_id
        except (OSError, ValueError):
            return False

    def _find(self, kernel: DumpKernel) -> tuple[aptmod.Apt, list[aptmod.Available]]:
        """Where apt offers the -dbg package: this machine's lists, else a private config."""
        names = package_names(kernel.release)
        tried = []
        host = host_arch(self.run)
        if host == kernel.arch:
            apt = aptmod.Apt(self.run)
            for name in names:
                found = apt.show(name)
                if found:
                    return apt, found
            tried.append("this machine's apt lists")
        codename = aptmod.host_codename(self.os_release)
        if codename is None:
            raise KdumpError(
                f"none of {', '.join(names)} is in {' or '.join(tried) or 'apt'}, and this "
                "machine is not Debian, so no Debian mirror is known to look in")
        suite = suite_of(kernel.release, kernel.version) or codename
        mirrors = aptmod.debian_mirrors(aptmod.machine_entries(self.etc), codename)
        private = self.apt_root / f"{suite}-{kernel.arch}"
        apt = aptmod.Apt(self.run, private, kernel.arch, aptmod.private_sources(mirrors, suite))
        self.say(f"reading {suite}'s package lists for {kernel.arch} "
                 f"(private apt configuration in {private})")
        apt.update()
        for name in names:
            found = apt.show(f"{name}:{kernel.arch}")
            if found:
                return apt, found
        tried.append(f"{suite} for {kernel.arch}")
        raise KdumpError(f"none of {', '.join(names)} is in {' or '.join(tried)}: the archive "
                         "keeps only current kernels; an older one's -dbg package must be found "
                         "by hand and passed with --vmlinux")

    def extract(self, deb: Path, into: Path) -> Path:
        """Only the vmlinux out of a -dbg package (the rest is module debug info)."""
        into.mkdir(parents=True, exist_ok=True)
        try:
            unpack = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                                      stdout=subprocess.PIPE)
        except FileNotFoundError:
            raise KdumpError("dpkg-deb is not installed") from None
        assert unpack.stdout is not None
        tar = subprocess.run(["tar", "-x", "-C", str(into), "--wildcards", DBG_MEMBERS],
                             stdin=unpack.stdout, capture_output=True, text=True, check=False)
        unpack.stdout.close()
        if unpack.wait() != 0 or tar.returncode != 0:
            lines = tar.stderr.strip().splitlines()
            raise KdumpError(f"extracting the vmlinux from {deb.name} failed: "
                             f"{lines[-1] if lines else 'dpkg-deb failed'}")
        found = [p for p in into.rglob("vmlinux*") if p.is_file() and not p.is_symlink()]
        if not found:
            raise KdumpError(f"{deb.name} holds no vmlinux under /usr/lib/debug")
        return max(found, key=lambda p: p.stat().st_size)
