"""Which vmlinux with DWARF belongs to a dump: matched by build ID, never by name alone.

The kernel writes its build ID into VMCOREINFO (`BUILD-ID=`, since Linux 5.9,
commit 0935288c6e00 "kdump: append kernel build-id string to VMCOREINFO"); a
vmlinux carries the same bytes in its `GNU` build-ID note. A vmlinux whose ID
differs belongs to another build: drgn would ignore it silently, so it is
checked here and the user is told.

Places looked at, in order: the file given with --vmlinux; kdumpctl-py's own
cache (`~/.cache/kdumpctl-py/debuginfo/RELEASE/vmlinux`, filled by
`kdumpctl-py debuginfo fetch`); each debug directory (default /usr/lib/debug)
in the build-ID layout both Fedora and Debian use (`.build-id/xx/yyyy.debug`),
Debian's -dbg layout (`boot/vmlinux-RELEASE`) and Fedora's debuginfo layout
(`lib/modules/RELEASE/vmlinux`); and the places drgn itself tries
(`/boot/vmlinux-RELEASE`, `/lib/modules/RELEASE/{build/vmlinux,vmlinux}`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kdumpctl_py.elf import ELF_MAGIC, NT_GNU_BUILD_ID, notes_before_damage
from kdumpctl_py.errors import KdumpError, UsageError

DEBUG_DIRS: tuple[str, ...] = ("/usr/lib/debug",)

MATCH = "match"
MISMATCH = "mismatch"
NO_BUILD_ID = "no build ID"
UNREADABLE = "unreadable"
UNVERIFIED = "unverified"  # the dump has no build ID to compare with


@dataclass(frozen=True)
class Check:
    """One candidate file that exists, and what its build ID says about it."""

    path: str
    origin: str
    verdict: str
    build_id: str | None = None
    detail: str | None = None

    @property
    def usable(self) -> bool:
        return self.verdict in (MATCH, UNVERIFIED)


@dataclass(frozen=True)
class Found:
    """The outcome of a search: the vmlinux to use (or None) and why."""

    build_id: str | None
    release: str | None
    vmlinux: str | None = None
    origin: str | None = None
    verdict: str | None = None
    checked: tuple[Check, ...] = ()
    looked: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def cache_root() -> Path:
    """kdumpctl-py's debuginfo cache: $XDG_CACHE_HOME (or ~/.cache)/kdumpctl-py/debuginfo."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kdumpctl-py" / "debuginfo"


def cached_vmlinux(release: str, cache: Path | None = None) -> Path:
    return (cache or cache_root()) / release / "vmlinux"


def normalise_build_id(text: str | None) -> str | None:
    if not text:
        return None
    value = text.strip().lower()
    try:
        bytes.fromhex(value)
    except ValueError:
        return None
    return value or None


def elf_build_id(path: str | os.PathLike[str]) -> str | None:
    """The GNU build ID of an ELF file (vmlinux or .debug), or None if it has none.

    Raises OSError when the file cannot be read and ValueError when it is no ELF.
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        try:
            elf = ELFFile(f)
            blobs: list[bytes] = []
            for sec in elf.iter_sections():
                if sec["sh_type"] == "SHT_NOTE":
                    blobs.append(sec.data())
            if not blobs:
                for seg in elf.iter_segments():
                    if seg["p_type"] == "PT_NOTE":
                        blobs.append(seg.data())
        except (ELFError, EOFError) as e:
            raise ValueError(f"not an ELF file: {e}") from None
        little = elf.little_endian
    for blob in blobs:
        for note in notes_before_damage(blob, little):
            if note.name == "GNU" and note.type == NT_GNU_BUILD_ID and note.desc:
                return note.desc.hex()
    return None


def check(path: str, origin: str, want: str | None) -> Check:
    """Read `path`'s build ID and compare it with the dump's."""
    try:
        have = elf_build_id(path)
    except (OSError, ValueError) as e:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return Check(path, origin, UNREADABLE, detail=detail)
    if want is None:
        return Check(path, origin, UNVERIFIED, have)
    if have is None:
        return Check(path, origin, NO_BUILD_ID)
    return Check(path, origin, MATCH if have == want else MISMATCH, have)


def candidates(release: str | None, build_id: str | None,
               debug_dirs: tuple[str, ...] = DEBUG_DIRS,
               cache: Path | None = None) -> list[tuple[str, str]]:
    """(path, origin) of every place a matching vmlinux may be, most specific first."""
    out: list[tuple[str, str]] = []
    if release:
        out.append((str(cached_vmlinux(release, cache)), "kdumpctl-py cache"))
    for d in debug_dirs:
        if build_id and len(build_id) > 2:
            out.append((os.path.join(d, ".build-id", build_id[:2], build_id[2:] + ".debug"),
                        "build-ID link"))
        if release:
            out.append((os.path.join(d, "boot", f"vmlinux-{release}"), "Debian -dbg layout"))
            out.append((os.path.join(d, "lib", "modules", release, "vmlinux"),
                        "Fedora debuginfo layout"))
    if release:
        out.append((f"/boot/vmlinux-{release}", "/boot"))
        out.append((f"/lib/modules/{release}/build/vmlinux", "kernel build tree"))
        out.append((f"/lib/modules/{release}/vmlinux", "/lib/modules"))
    seen: set[str] = set()
    unique = []
    for path, origin in out:
        if path not in seen:
            seen.add(path)
            unique.append((path, origin))
    return unique


def describe_mismatch(c: Check, want: str | None) -> str:
    if c.verdict == MISMATCH:
        return (f"{c.path} does not match the dump: its build ID is {c.build_id}, "
                f"the dump's {want}; not used")
    if c.verdict == NO_BUILD_ID:
        return f"{c.path} has no build ID, so it cannot be matched with the dump; not used"
    if c.verdict == UNREADABLE:
        return f"{c.path} cannot be read as ELF ({c.detail}); not used"
    return f"{c.path}: {c.verdict}"


def elf_arch(path: str) -> str:
    """The architecture an ELF file was built for, as uname spells it."""
    from kdumpctl_py.arch import ARCHES

    with open(path, "rb") as f:
        ident = f.read(20)
    if len(ident) < 20 or not ident.startswith(ELF_MAGIC):
        return "not ELF"
    machine = int.from_bytes(ident[18:20], "little" if ident[5] == 1 else "big")
    return next((a.name for a in ARCHES if a.elf_machine == machine), f"ELF machine {machine}")


def check_given(c: Check, want: str | None, dump_arch: str | None) -> None:
    """A vmlinux named on the command line is the user's claim: one of another build or
    architecture is an error naming both, never a note and a search elsewhere."""
    have_arch = elf_arch(c.path)
    if c.usable and (dump_arch is None or have_arch == dump_arch):
        return
    if c.verdict == UNREADABLE:
        raise UsageError(f"--vmlinux {c.path} cannot be read as ELF ({c.detail})")
    raise KdumpError(f"--vmlinux {c.path} is not the dump's kernel: it has build ID "
                     f"{c.build_id or 'none'} for {have_arch}, the dump build ID "
                     f"{want or 'none'} for {dump_arch or 'an unknown architecture'} "
                     "(kdumpctl-py debuginfo find VMCORE lists the candidates)")


def find_vmlinux(build_id: str | None, release: str | None, given: str | None = None,
                 debug_dirs: tuple[str, ...] = DEBUG_DIRS, cache: Path | None = None,
                 search: bool = True, arch: str | None = None) -> Found:
    """Find the vmlinux for a dump of architecture `arch`. A given file must match (by
    build ID and architecture); of the others the mismatched are reported and skipped."""
    want = normalise_build_id(build_id)
    checked: list[Check] = []
    notes: list[str] = []
    places: list[tuple[str, str]] = []
    if given is not None:
        if not os.path.isfile(given):
            why = "not a regular file" if os.path.exists(given) else "no such file"
            raise UsageError(f"--vmlinux {given}: {why}")
        places.append((given, "--vmlinux"))
    if search:
        places += candidates(release, want, debug_dirs, cache)
    looked = []
    for path, origin in places:
        looked.append(path)
        if origin != "--vmlinux" and not os.path.isfile(path):
            continue
        c = check(path, origin, want)
        if origin == "--vmlinux":
            check_given(c, want, arch)
        checked.append(c)
        if c.usable:
            if c.verdict == UNVERIFIED:
                notes.append(f"the dump has no build ID (kernels before 5.9 write none): "
                             f"{path} is used without verifying that it matches")
            return Found(want, release, path, origin, c.verdict, tuple(checked), tuple(looked),
                          tuple(notes))
        notes.append(describe_mismatch(c, want))
    return Found(want, release, None, None, None, tuple(checked), tuple(looked), tuple(notes))
