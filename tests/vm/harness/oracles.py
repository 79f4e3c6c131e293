"""Debian's makedumpfile and crash of any suite and architecture, run on this host.

Each suite's tools are the oracles for that suite's kernels (Debian 12's crash
cannot read 6.12). They run from a sysroot of the suite's packages unpacked
with `dpkg-deb -x` (no maintainer scripts, the host's dpkg untouched): x86_64
ones through the sysroot's own dynamic loader, arm64 ones under qemu-user
(`qemu-aarch64-static -L SYSROOT`). Only the two tools and the libraries of
their dependency closure are unpacked; the sysroot is cached by package versions.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .aptsources import Mirrors
from .cache import building_dir
from .config import Arch
from .debian import Package
from .errors import HarnessError
from .kernels import apt_state
from .proc import run

TOOLS = ("makedumpfile", "crash")


@dataclass(frozen=True)
class Oracles:
    """A suite's makedumpfile and crash for one architecture, ready to run."""

    root: Path
    arch: Arch
    suite: str
    versions: dict[str, str]

    def command(self, tool: str) -> list[str]:
        """argv that runs `tool` from the sysroot."""
        exe = self.root / "usr" / "bin" / tool
        if not exe.exists():
            exe = self.root / "usr" / "sbin" / tool
        if self.arch.name == platform.machine():
            libs = ":".join(str(self.root / d / self.arch.triplet) for d in ("lib", "usr/lib"))
            return [str(self._loader()), "--library-path", libs, str(exe)]
        qemu = f"qemu-{self.arch.triplet.split('-')[0]}-static"
        return [qemu, "-L", str(self.root), str(exe)]

    def _loader(self) -> Path:
        """The suite's ld-linux, its absolute symlinks followed inside the sysroot."""
        for d in ("lib64", "usr/lib64", f"lib/{self.arch.triplet}", f"usr/lib/{self.arch.triplet}"):
            for path in sorted((self.root / d).glob("ld-linux*.so*")):
                while path.is_symlink():
                    target = os.readlink(path)
                    path = (self.root / target.lstrip("/") if target.startswith("/")
                            else path.parent / target)
                if path.is_file():
                    return path
        raise HarnessError(f"no dynamic loader in {self.root}")

    def makedumpfile(self, args: list[str], timeout: float = 1800) -> None:
        run([*self.command("makedumpfile"), *args], timeout=timeout)

    def crash(self, vmlinux: Path, dump: Path, commands: str,
              timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """crash -s VMLINUX DUMP with `commands` on stdin; its output, whatever the status."""
        indexed = with_gdb_index(vmlinux, self.arch)
        return subprocess.run([*self.command("crash"), "-s", str(indexed), str(dump)],
                              input=commands + "\nquit\n", capture_output=True, text=True,
                              errors="replace", timeout=timeout, check=False)


def oracles(cache: Path, suite: str, arch: Arch, mirrors: Mirrors) -> Oracles:
    """The suite's tools for `arch`, downloading and unpacking them once."""
    apt = apt_state(cache, suite, arch, mirrors)
    apt.update()
    closure = apt.resolve(list(TOOLS))
    # Shared libraries come in lib* packages (and zlib1g); the rest (perl, binutils)
    # the two programs do not need to read a dump.
    wanted = [p for p in closure if p.name in TOOLS or p.name.startswith(("lib", "zlib"))]
    versions = {p.name: p.version for p in wanted if p.name in TOOLS}
    if set(versions) != set(TOOLS):
        raise HarnessError(f"{suite} has no {' or '.join(set(TOOLS) - set(versions))} "
                           f"for {arch.debian}")
    debs = apt.download(wanted, cache / "debs" / f"{suite}-{arch.debian}")
    key = hashlib.sha256(" ".join(p.key for p in sorted(wanted)).encode()).hexdigest()[:12]
    final = cache / "oracles" / f"{suite}-{arch.debian}-{key}"
    if not final.exists():
        _unpack(debs, final)
    return Oracles(final, arch, suite, versions)


def _unpack(debs: dict[Package, Path], final: Path) -> None:
    with building_dir(final) as tmp:
        for p in sorted(debs):
            run(["dpkg-deb", "-x", debs[p], tmp])
        # usr-merged suites ship the loader and libraries under /usr only, while
        # binaries name /lib/ld-linux-*.so and /lib64/ld-linux-*.so.
        for top in ("lib", "lib64"):
            if not (tmp / top).exists() and (tmp / "usr" / top).exists():
                (tmp / top).symlink_to(f"usr/{top}")


def with_gdb_index(vmlinux: Path, arch: Arch) -> Path:
    """A copy of `vmlinux` with a .gdb_index section, made once beside it.

    crash's gdb otherwise scans all of the kernel's DWARF at start: under
    qemu-user that took 145 s for `sys` and `bt` on Debian 12's arm64 vmlinux,
    with the index 29 s (gdb-add-index does the same for installed programs).
    """
    final = vmlinux.with_name(vmlinux.name + "-gdb-index")
    if final.exists():
        return final
    objcopy = "objcopy" if arch.name == platform.machine() else f"{arch.triplet}-objcopy"
    with tempfile.TemporaryDirectory(prefix=".gdb-index.", dir=vmlinux.parent) as scratch:
        tmp = Path(scratch)
        run(["gdb", "-batch", "-nx", "-iex", "set auto-load no", "-ex",
             f"save gdb-index {tmp}", str(vmlinux)], timeout=1800)
        run([objcopy, "--add-section", f".gdb_index={tmp / (vmlinux.name + '.gdb-index')}",
             "--set-section-flags", ".gdb_index=readonly", str(vmlinux), str(tmp / "out")],
            timeout=1800)
        (tmp / "out").rename(final)
    return final
