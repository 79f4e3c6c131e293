"""The guest initramfs: a cached base archive (packages, modules) plus a per-run overlay.

Both halves are gzip-compressed newc archives; the kernel unpacks concatenated
archives in order, so base + overlay in one file is still one initramfs, used for
the first and the capture kernel alike. Only the small overlay (the generated
/init, the project wheel) is rebuilt on every run.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import lzma
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import captureroot, config, cpio, elf, guestroot, wheel
from .cache import building_dir
from .config import Arch
from .debian import Kernel, Package
from .errors import HarnessError
from .guestroot import Entry, Tree

log = logging.getLogger("crash-cycle")

GZIP_LEVEL = 6
# Files whose content shapes the base archive: editing them invalidates the cache.
_BUILDER_SOURCES = ("guestroot.py", "cpio.py", "initramfs.py", "config.py", "elf.py")


@dataclass(frozen=True)
class Archive:
    """A compressed archive and what it costs the guest."""

    path: Path
    compressed: int
    uncompressed: int  # bytes of newc data; about what unpacking puts in tmpfs
    info: dict[str, Any]


def _builder_digest(extra: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _BUILDER_SOURCES + extra:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def write_archive(tree: Tree, path: Path, xz: bool = False) -> tuple[int, int]:
    """Write `tree` as gzip'd (or xz'd) newc; return (compressed, uncompressed) sizes."""
    with open(path, "wb") as raw:
        stream: lzma.LZMAFile | gzip.GzipFile
        if xz:
            stream = lzma.LZMAFile(raw, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                                   filters=captureroot.XZ_FILTERS)
        else:
            stream = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
        with stream:
            writer = cpio.NewcWriter(stream)
            tree.write(writer)
            writer.close()
    return path.stat().st_size, writer.written


def build_base(
    cache: Path,
    arch: Arch,
    suite: str,
    packages: dict[Package, Path],
    kernel: Kernel,
    kernel_dir: Path | None,
) -> Archive:
    """The package part of the initramfs, cached by package versions and builder code.

    Without kernel_dir (a --kernel-image with everything built in) it holds no modules.
    """
    key_data = {
        "packages": sorted(p.key + ":" + p.arch for p in packages),
        "kernel": kernel.image.key if kernel_dir is not None else None,
        "modules": list(arch.virtio_modules) if kernel_dir is not None else [],
        "builder": _builder_digest(),
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:16]
    final = cache / "initramfs" / f"{suite}-{arch.debian}-{key}"
    if (final / "base.cpio.gz").exists():
        info = json.loads((final / "info.json").read_text())
        return Archive(final / "base.cpio.gz", info["compressed"], info["uncompressed"], info)

    log.info("building the base initramfs for %s/%s", suite, arch.name)
    tree, modules, builtins = guest_tree(arch, packages, kernel, kernel_dir)
    _check_machine(tree, arch)
    with building_dir(final) as tmp:
        compressed, uncompressed = write_archive(tree, tmp / "base.cpio.gz")
        info = {
            **key_data,
            "modules": [{"name": n, "path": "/" + p} for n, p, _ in modules],
            "builtin_modules": builtins,
            "compressed": compressed,
            "uncompressed": uncompressed,
            "excluded_packages": sorted(config.EXCLUDED_PACKAGES),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    return Archive(final / "base.cpio.gz", compressed, uncompressed, info)


def guest_tree(arch: Arch, packages: dict[Package, Path], kernel: Kernel,
               kernel_dir: Path | None) -> tuple[Tree, list[tuple[str, str, bytes]], list[str]]:
    """The first kernel's whole tree, checked: packages merged, virtio modules, skeleton.

    Returns (tree, [(module name, guest path, bytes)], [built-in module names]).
    """
    tree = Tree()
    for _pkg, pkg_dir in sorted(packages.items()):
        tree.add_package(pkg_dir)
    tree.alternatives(arch.triplet)
    modules: list[tuple[str, str, bytes]] = []
    builtins: list[str] = []
    if kernel_dir is not None:
        modules, builtins = guestroot.kernel_modules(kernel_dir, kernel.release,
                                                     arch.virtio_modules)
        for _name, guest_path, data in modules:
            tree.add(guest_path, Entry("file", perm=0o644, data=data))
        for extra in ("modules.builtin", "modules.order"):
            src = guestroot.module_root(kernel_dir, kernel.release) / extra
            if src.exists():
                tree.add(f"usr/lib/modules/{kernel.release}/{extra}",
                         Entry("file", source=src, perm=0o644))
    tree.add_skeleton()
    problems = tree.check_libraries(arch.triplet)
    if problems:
        raise HarnessError(
            "the guest tree is missing shared libraries:\n  " + "\n  ".join(problems[:30]),
            hint="a package in config.EXCLUDED_PACKAGES is needed after all",
        )
    return tree, modules, builtins


def _check_machine(tree: Tree, arch: Arch) -> None:
    """The interpreter we will run is built for the guest (a wrong-arch download is loud)."""
    python = tree.resolve("usr/bin/python3")
    if python is None:
        raise HarnessError("the guest tree has no /usr/bin/python3")
    dyn = elf.dynamic(tree.entries[python].read())
    if dyn.machine != arch.elf_machine:
        raise HarnessError(f"/usr/bin/python3 is for ELF machine {dyn.machine}, "
                           f"not {arch.name} ({arch.elf_machine})")


def build_capture(cache: Path, arch: Arch, suite: config.Suite, packages: dict[Package, Path],
                  kernel: Kernel, kernel_dir: Path | None, host_python: str,
                  project: Path) -> Archive:
    """The capture kernel's base archive (captureroot.py), xz, cached by what it holds.

    `project` is the unpacked wheel whose capture and save imports decide the Python
    modules; the project's own files come with the overlay.
    """
    _own, external = captureroot.project_modules(project)
    loaded = captureroot.host_trace(host_python, project, external | set(_own))
    isal = wheel.isal_files(cache / "wheels", arch.triplet.split("-")[0], suite.python,
                             host_python)
    key_data = {
        "packages": sorted(p.key + ":" + p.arch for p in packages),
        "kernel": kernel.image.key if kernel_dir is not None else None,
        "modules": list(arch.virtio_modules) if kernel_dir is not None else [],
        "builder": _builder_digest(("captureroot.py",)),
        "loaded": sorted(n for n in loaded if not n.startswith(captureroot.PROJECT)),
        "isal": sorted((p, hashlib.sha256(e.read()).hexdigest()) for p, e in isal.items()),
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:16]
    final = cache / "initramfs" / f"{suite.name}-{arch.debian}-capture-{key}"
    if (final / "capture.cpio.xz").exists():
        info = json.loads((final / "info.json").read_text())
        return Archive(final / "capture.cpio.xz", info["compressed"], info["uncompressed"],
                       info)
    log.info("building the capture initramfs for %s/%s", suite.name, arch.name)
    full, modules, _builtins = guest_tree(arch, packages, kernel, kernel_dir)
    for path, entry in isal.items():  # the modules `save` imports are taken as any others'
        full.add(path, entry)
    extra = [p for _n, p, _d in modules]
    lean = captureroot.capture_tree(full, suite.python, arch.triplet,
                                    sysconfig.get_config_var("MULTIARCH") or "", loaded, extra)
    with building_dir(final) as tmp:
        compressed, uncompressed = write_archive(lean, tmp / "capture.cpio.xz", xz=True)
        info = {"compressed": compressed, "uncompressed": uncompressed,
                "files": sum(1 for e in lean.entries.values() if e.kind == "file")}
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "paths.txt").write_text("".join(f"{p}\n" for p in sorted(lean.entries)))
    return Archive(final / "capture.cpio.xz", compressed, uncompressed, info)


def build_overlay(files: dict[str, Entry], path: Path, xz: bool = False) -> Archive:
    """The per-run part: /init, its settings, the project wheel, the launcher."""
    tree = Tree()
    for guest_path, entry in files.items():
        tree.add(guest_path, entry)
    compressed, uncompressed = write_archive(tree, path, xz)
    return Archive(path, compressed, uncompressed, {"files": len(files)})


def concatenate(parts: list[Archive], path: Path) -> None:
    """One initrd file from several compressed archives, each padded to 4 bytes."""
    with open(path, "wb") as out:
        for part in parts:
            with open(part.path, "rb") as f:
                shutil.copyfileobj(f, out)
            out.write(b"\0" * (-out.tell() % 4))
