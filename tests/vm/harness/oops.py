"""--crash oops: a small module, built against the guest kernel's headers, that oopses.

Debian's cloud kernels have no lkdtm (CONFIG_LKDTM is not set in bookworm's 6.1 or
trixie's 6.12), so a crash other than sysrq's needs a module of our own. Its init
writes through a NULL pointer; with panic_on_oops=1 the oops panics ("Fatal
exception") and kdump takes the dump: a different bug from sysrq's, for the crash
signature's tests.

The module is built on the host from Debian's own linux-headers-REL,
linux-headers-ABI-common and linux-kbuild-V packages, unpacked into one scratch tree
(their Makefile includes the common tree by its absolute /usr/src path, which is
rewritten to the scratch tree's), with the host's compiler: only for a guest of the
host's architecture (an x86_64 host builds for x86_64 guests). Debian signs its
modules but does not enforce signatures (CONFIG_MODULE_SIG_FORCE is not set), so the
unsigned module loads and taints the kernel (O, E). It is cached under the harness
cache keyed by the kernel package and this file's source.
"""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
import tempfile
from pathlib import Path

from .cache import building_dir
from .config import Arch
from .debian import AptState, Kernel, Package, extract
from .errors import HarnessError
from .proc import run

NAME = "kdumpctl_oops"
GUEST_PATH = f"etc/kdumpctl-vm/{NAME}.ko"
SOURCE = f"""\
// SPDX-License-Identifier: GPL-2.0
// kdumpctl-py's VM tier: oops on load (a NULL pointer write), for --crash oops.
#include <linux/module.h>

static noinline void {NAME}_write(int *p)
{{
	WRITE_ONCE(*p, 1);
}}

static int __init {NAME}_init(void)
{{
	{NAME}_write(NULL);
	return 0;
}}
module_init({NAME}_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdumpctl-py VM tier: oops on load");
"""
HOST_ARCHES = {"x86_64": "amd64", "aarch64": "arm64"}


def module(cache: Path, apt: AptState, kernel: Kernel, arch: Arch) -> Path:
    """The built .ko for `kernel`, from the cache or built now."""
    if HOST_ARCHES.get(platform.machine()) != arch.debian:
        raise HarnessError(f"--crash oops builds its module with this host's compiler, "
                           f"which targets {platform.machine()}, not {arch.debian}")
    key = hashlib.sha256((kernel.image.key + "\0" + Path(__file__).read_text())
                         .encode()).hexdigest()[:16]
    final = cache / "oops" / f"{kernel.release}-{key}"
    if not (final / f"{NAME}.ko").exists():
        with building_dir(final) as tmp:
            _build(cache, apt, kernel, tmp / f"{NAME}.ko")
    return final / f"{NAME}.ko"


def _header_packages(apt: AptState, kernel: Kernel) -> list[str]:
    headers = f"linux-headers-{kernel.release}"
    deps = apt.depends(headers)
    names = [headers] + re.findall(r"(linux-headers-\S+-common|linux-kbuild-[\d.]+)", deps)
    if len(names) < 3:
        raise HarnessError(f"{headers} depends on no common headers or kbuild: {deps!r}")
    return names


def _build(cache: Path, apt: AptState, kernel: Kernel, out: Path) -> None:
    pkgs = []
    for name in _header_packages(apt, kernel):
        pkg = apt.candidate(name)
        if pkg is None:
            raise HarnessError(f"{apt.suite} has no {name}")
        pkgs.append(pkg)
    debs = apt.download(pkgs, cache / "debs" / f"{apt.suite}-{kernel.image.arch}")
    with tempfile.TemporaryDirectory(prefix="kdumpctl-oops.") as tmp:
        _make(cache, pkgs, debs, kernel, Path(tmp), out)


def _make(cache: Path, pkgs: list[Package], debs: dict[Package, Path], kernel: Kernel,
          work: Path, out: Path) -> None:
    tree = work / "tree"
    tree.mkdir()
    for pkg in pkgs:
        run(["cp", "-a", extract(debs[pkg], pkg, cache) / "usr", tree])
    src = tree / "usr/src" / f"linux-headers-{kernel.release}"
    makefile = src / "Makefile"
    makefile.write_text(makefile.read_text().replace("include /usr/src/",
                                                     f"include {tree}/usr/src/"))
    mod = work / "module"
    mod.mkdir()
    (mod / f"{NAME}.c").write_text(SOURCE)
    (mod / "Makefile").write_text(f"obj-m := {NAME}.o\n")
    run(["make", "-s", "-C", src, f"M={mod}", "modules"])
    shutil.copy(mod / f"{NAME}.ko", out)
