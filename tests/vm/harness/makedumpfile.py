"""The suite's makedumpfile in the capture kernel, for `--impl save=makedumpfile`.

Debian builds makedumpfile dynamically (libdw, libelf, liblzo2, zlib) and makes it
depend on perl for a helper script. Its package closure is fetched and unpacked
as the guest's other packages are (debian.py), but only the binary and the
libraries it loads (its ELF closure, as captureroot.py takes it for Python) join
the guest, in the per-run overlay: the cached base archives and the default
cycles stay as they are.
"""

from __future__ import annotations

from pathlib import Path

from .captureroot import elf_closure
from .config import Arch
from .debian import AptState, extract
from .errors import HarnessError
from .guestroot import Entry, Tree

# Where Debian's package puts it (bookworm: /usr/bin), canonical (guestroot.canonical).
BINARIES = ("usr/bin/makedumpfile", "usr/sbin/makedumpfile")


def guest_files(apt: AptState, arch: Arch, cache: Path) -> dict[str, Entry]:
    """makedumpfile and what it loads, as overlay entries (guest path -> Entry)."""
    closure = apt.resolve(["makedumpfile"])
    debs = apt.download(closure, cache / "debs" / f"{apt.suite}-{arch.debian}")
    tree = Tree()
    for pkg in closure:
        tree.add_package(extract(debs[pkg], pkg, cache))
    tree.add_skeleton()
    return binary_files(tree, arch.triplet)


def binary_files(tree: Tree, triplet: str) -> dict[str, Entry]:
    """The makedumpfile binary in `tree` and its ELF closure (loader, libraries, links)."""
    binary = next((p for p in BINARIES if p in tree.entries), None)
    if binary is None:
        raise HarnessError("the makedumpfile package has no /usr/bin or /usr/sbin/makedumpfile")
    paths = elf_closure(tree, {binary}, triplet)
    missing = sorted(p for p in paths if p not in tree.entries)
    if missing:
        raise HarnessError(f"makedumpfile needs {missing[0]}, which its packages lack")
    return {p: tree.entries[p] for p in sorted(paths) if tree.entries[p].kind != "dir"}
