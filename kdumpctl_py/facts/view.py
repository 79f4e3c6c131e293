"""One view of a machine: every fact kdumpctl-py needs, from / or from a snapshot.

Planners take a `SystemView` and nothing else, so they are pure functions of
what it holds and run unchanged against a snapshot of another machine. A file
that is missing or unreadable becomes None (unknown) with its reason kept in
`unknown`; nothing here raises for a missing fact.

A snapshot is a directory holding the same files at the same paths, plus
`kdumpctl-snapshot.json` for the facts that are not files (uname, syscall
probes, free space and dumps of the target). Probing the live kernel is an
act (a system call), so the shell does it (kdumpctl_py.load.probe) and hands
the answers in; facts never import the layer that acts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, get_args

from kdumpctl_py.arch import Arch, get_arch
from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.elfcore import ElfCore, parse_elf_core
from kdumpctl_py.facts.iomem import Iomem, parse_iomem
from kdumpctl_py.facts.kconfig import parse_kconfig
from kdumpctl_py.facts.kexec_calls import (
    FDSET_TYPES_FILES,
    LIMIT_FILES,
    Availability,
    calls_from_evidence,
    limits_set,
    why_not_probed,
)
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo

if TYPE_CHECKING:
    from collections.abc import Mapping
    from tarfile import TarFile
    from tempfile import TemporaryDirectory

META = "kdumpctl-snapshot.json"
DEFAULT_TARGET = "/var/crash"
BOOT_HEADER = 64 << 10
# Proc and sysfs files are small; cap what is read so a bad root cannot make us swallow gigabytes.
MAX_READ = 8 << 20


class Uname(NamedTuple):
    """uname(2)'s fields."""

    sysname: str
    nodename: str
    release: str
    version: str
    machine: str


class CrashNote(NamedTuple):
    """A CPU's crash_notes buffer, from sysfs."""

    cpu: int
    address: int
    size: int | None  # crash_notes_size is missing on old kernels


@dataclass(frozen=True)
class DumpEntry:
    """A dump under the dump directory, as status and dumps list it."""

    name: str
    complete: bool
    bytes: int
    saved: str | None = None  # how, from the dump's save.json (capture.record.summary)


def cpulist(text: str) -> list[int]:
    """Parse a sysfs CPU list such as "0-3,6,8-9"."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if part:
            lo, sep, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return cpus


def _extract_plain_files(tar: TarFile, dest: Path) -> None:
    """Extract only directories and regular files that stay inside dest.

    A snapshot comes from another machine; Python before 3.11.4 (Debian 12's
    3.11.2) has no extraction filter, so the check is done here.
    """
    for member in tar:
        target = (dest / member.name).resolve()
        if not target.is_relative_to(dest.resolve()) or not (member.isdir() or member.isfile()):
            raise UsageError(f"snapshot archive member {member.name!r} is not a plain file")
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        import shutil

        source = tar.extractfile(member)
        assert source is not None
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)


class SystemView:
    def __init__(self, root: str | os.PathLike[str] = "/",
                 probes: Mapping[str, Availability] | None = None) -> None:
        """`probes`: the live kernel's answers to the load calls' probes, when the shell
        probed (kdumpctl_py.load.probe); a snapshot's are in its metadata."""
        self._probed = None if probes is None else dict(probes)
        path = Path(root)
        self._tmp: TemporaryDirectory[str] | None = None
        if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
            path = self._unpack(path)
        if not path.is_dir():
            raise UsageError(f"sysroot {root} is not a directory or a .tar.gz snapshot")
        self.root = path.resolve()
        self.live = self.root == Path("/")
        self.unknown: dict[str, str] = {}
        meta_path = self.root / META.lstrip("/")
        self.meta: dict[str, Any] = {}
        if not self.live:
            if not meta_path.is_file():
                raise UsageError(f"{root} is not a kdumpctl-py snapshot (no {META})")
            import json  # only a snapshot has metadata: a save reads the live machine

            try:
                self.meta = json.loads(meta_path.read_text())
            except (OSError, ValueError) as e:
                raise UsageError(f"{meta_path}: unreadable snapshot metadata: {e}") from None

    def _unpack(self, tarball: Path) -> Path:
        import tarfile
        import tempfile
        import zlib

        self._tmp = tempfile.TemporaryDirectory(prefix="kdumpctl-py-snapshot-")
        try:
            # r:gz, not r: tarfile's guessing would name each method it tried, one per line
            with tarfile.open(tarball, "r:gz") as tar:
                _extract_plain_files(tar, Path(self._tmp.name))
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
            raise UsageError(f"{tarball}: not a readable snapshot archive: {e}") from None
        entries = os.listdir(self._tmp.name)
        # "tar czf snap.tar.gz snap/" nests everything one level down.
        if len(entries) == 1 and (Path(self._tmp.name) / entries[0] / META).exists():
            return Path(self._tmp.name) / entries[0]
        return Path(self._tmp.name)

    # -- raw access ---------------------------------------------------------

    def path(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def data(self, rel: str, limit: int = MAX_READ) -> bytes | None:
        try:
            with open(self.path(rel), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if 0 < size <= limit:  # a regular file: one read of its size
                    data = f.read(size)
                    if len(data) == size and not f.read(1):
                        return data
                    f.seek(0)
                # read(limit) would allocate `limit` bytes up front; /proc files say size 0.
                chunks = []
                total = 0
                while total < limit and (chunk := f.read(min(1 << 20, limit - total))):
                    chunks.append(chunk)
                    total += len(chunk)
                return b"".join(chunks)
        except OSError as e:
            self.unknown[rel] = e.strerror or str(e)
            return None

    def text(self, rel: str) -> str | None:
        raw = self.data(rel)
        return None if raw is None else raw.decode("utf-8", "replace")

    def _first_line(self, rel: str) -> str | None:
        text = self.text(rel)
        return None if text is None else text.strip()

    def _int(self, rel: str, base: int = 10) -> int | None:
        value = self._first_line(rel)
        if value is None:
            return None
        try:
            return int(value, base)
        except ValueError:
            self.unknown[rel] = f"not a number: {value[:40]!r}"
            return None

    def _flag(self, rel: str) -> bool | None:
        value = self._int(rel)
        return None if value is None else value != 0

    def mtime(self, rel: str) -> float | None:
        """A file's modification time; None when it is missing (a snapshot keeps /boot's
        files only with --with-boot, and an unpacked archive's times are its own)."""
        try:
            return self.path(rel).stat().st_mtime
        except OSError:
            return None

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel)))
        except OSError as e:
            self.unknown[rel] = e.strerror or str(e)
            return []

    # -- identity -----------------------------------------------------------

    @cached_property
    def uname(self) -> Uname:
        if self.live:
            u = os.uname()
            return Uname(u.sysname, u.nodename, u.release, u.version, u.machine)
        m = self.meta.get("uname", {})
        return Uname(*(str(m.get(k, "")) for k in Uname._fields))

    @cached_property
    def arch(self) -> Arch:
        return get_arch(self.uname.machine)

    @cached_property
    def os_release(self) -> dict[str, str]:
        text = self.text("/etc/os-release") or self.text("/usr/lib/os-release") or ""
        out = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key and not key.startswith("#"):
                out[key.strip()] = value.strip().strip("'\"")
        return out

    # -- memory and the crash reservation -------------------------------------

    @cached_property
    def cmdline(self) -> str | None:
        return self._first_line("/proc/cmdline")

    @cached_property
    def iomem(self) -> Iomem | None:
        text = self.text("/proc/iomem")
        if text is None:
            return None
        try:
            return parse_iomem(text)
        except UsageError as e:
            self.unknown["/proc/iomem"] = str(e)
            return None

    @cached_property
    def meminfo(self) -> dict[str, int]:
        """/proc/meminfo in bytes (values printed in kB are scaled)."""
        out: dict[str, int] = {}
        for line in (self.text("/proc/meminfo") or "").splitlines():
            key, _, rest = line.partition(":")
            fields = rest.split()
            if fields and fields[0].isdigit():
                scale = 1024 if fields[1:] == ["kB"] else 1
                out[key.strip()] = int(fields[0]) * scale
        return out

    @cached_property
    def kexec_crash_size(self) -> int | None:
        return self._int("/sys/kernel/kexec_crash_size")

    @cached_property
    def kexec_loaded(self) -> bool | None:
        return self._flag("/sys/kernel/kexec_loaded")

    @cached_property
    def kexec_crash_loaded(self) -> bool | None:
        return self._flag("/sys/kernel/kexec_crash_loaded")

    @cached_property
    def kexec_file_fdset_types(self) -> str | None:
        """The kernel's list of the fd types KEXEC_FILE_FDSET takes (its sysfs file)."""
        for rel in FDSET_TYPES_FILES:
            if (line := self._first_line(rel)) is not None:
                return line
        return None

    @cached_property
    def crash_hotplug(self) -> bool | None:
        """Whether the kernel updates the elfcorehdr itself on CPU/memory hotplug."""
        return self._flag("/sys/devices/system/memory/crash_hotplug")

    # -- what the capture kernel's elfcorehdr points at ------------------------

    @cached_property
    def vmcoreinfo_note(self) -> tuple[int, int] | None:
        """(physical address, size) of the VMCOREINFO note; both fields are hex."""
        text = self._first_line("/sys/kernel/vmcoreinfo")
        if text is None:
            return None
        try:
            addr, size = text.split()
            return int(addr, 16), int(size, 16)
        except ValueError:
            self.unknown["/sys/kernel/vmcoreinfo"] = f"not 'addr size': {text[:60]!r}"
            return None

    def _cpus(self, name: str) -> list[int] | None:
        text = self._first_line(f"/sys/devices/system/cpu/{name}")
        if text is None:
            return None
        try:
            return cpulist(text)
        except ValueError:
            self.unknown[f"/sys/devices/system/cpu/{name}"] = f"not a CPU list: {text!r}"
            return None

    @cached_property
    def possible_cpus(self) -> list[int] | None:
        return self._cpus("possible")

    @cached_property
    def online_cpus(self) -> list[int] | None:
        return self._cpus("online")

    @cached_property
    def crash_notes(self) -> list[CrashNote]:
        """Per-CPU crash_notes buffers; CPUs without the file are skipped, as kexec-tools does."""
        notes = []
        for cpu in self.possible_cpus or []:
            base = f"/sys/devices/system/cpu/cpu{cpu}"
            addr = self._int(f"{base}/crash_notes", 16)
            if addr is not None:
                notes.append(CrashNote(cpu, addr, self._int(f"{base}/crash_notes_size")))
        return notes

    @cached_property
    def kcore(self) -> ElfCore | None:
        path = self.path("/proc/kcore")
        try:
            with open(path, "rb") as f:
                return parse_elf_core(f, str(path))
        except OSError as e:
            self.unknown["/proc/kcore"] = e.strerror or str(e)
        except UsageError as e:
            self.unknown["/proc/kcore"] = str(e)
        return None

    @cached_property
    def vmcoreinfo(self) -> VmcoreInfo | None:
        kcore = self.kcore
        try:
            return kcore.vmcoreinfo if kcore else None
        except UsageError as e:
            self.unknown["/proc/kcore"] = str(e)
            return None

    @cached_property
    def fdt(self) -> bytes | None:
        """The boot device tree as the kernel preserved it (arm64, riscv, ppc)."""
        return self.data("/sys/firmware/fdt")

    # -- policy: may we load, and how ------------------------------------------

    @cached_property
    def lockdown(self) -> str | None:
        """The active lockdown mode: none, integrity or confidentiality."""
        text = self._first_line("/sys/kernel/security/lockdown")
        if text is None:
            return None
        for word in text.split():
            if word.startswith("["):
                return word.strip("[]")
        return None

    @cached_property
    def secure_boot(self) -> bool | None:
        name = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
        raw = self.data(f"/sys/firmware/efi/efivars/{name}")
        if raw is None:
            return None
        return len(raw) >= 5 and raw[4] == 1  # 4 bytes of attributes, then the value

    @cached_property
    def kexec_load_disabled(self) -> bool | None:
        return self._flag("/proc/sys/kernel/kexec_load_disabled")

    @cached_property
    def kernel_config(self) -> dict[str, str] | None:
        text = self.text(f"/boot/config-{self.uname.release}")
        if text is None:
            raw = self.data("/proc/config.gz")
            if raw is None:
                return None
            import gzip

            try:
                text = gzip.decompress(raw).decode("utf-8", "replace")
            except (OSError, EOFError) as e:
                self.unknown["/proc/config.gz"] = str(e)
                return None
        return parse_kconfig(text)

    @cached_property
    def kexec_load_limits(self) -> dict[str, int]:
        """kernel.kexec_load_limit_{panic,reboot} as far as the kernel has them (-1: none)."""
        out = {}
        for kind, rel in LIMIT_FILES.items():
            if self.path(rel).exists() and (value := self._int(rel)) is not None:
                out[kind] = value
        return out

    @cached_property
    def probes_skipped(self) -> str | None:
        """Why the load calls were judged without a probe; None when probed."""
        return why_not_probed(self.kexec_load_limits)

    @cached_property
    def probes(self) -> dict[str, Availability]:
        """Which load system calls this kernel answers: available, missing, not-permitted,
        unknown; empty when nobody probed (a live view the shell handed no answers)."""
        if limits_set(self.kexec_load_limits):
            return calls_from_evidence(self.kexec_load_limits, self.kernel_config,
                                       self.kexec_file_fdset_types, self.kexec_load_disabled)
        if self.live:
            return dict(self._probed or {})
        known: tuple[str, ...] = get_args(Availability)
        return {str(k): v if v in known else "unknown"
                for k, v in self.meta.get("probes", {}).items()}

    @cached_property
    def boot_id(self) -> str | None:
        """This boot's random id, which keys what may be cached until the next boot."""
        return self._first_line("/proc/sys/kernel/random/boot_id")

    # -- files the capture kernel is made of -----------------------------------

    @cached_property
    def boot_files(self) -> dict[str, int]:
        """Names and sizes of the files in /boot (kernels, initrds, configs)."""
        if not self.live and "boot" in self.meta:
            return {str(k): int(v) for k, v in self.meta["boot"].items()}
        out = {}
        for name in self.listdir("/boot"):
            p = self.path(f"/boot/{name}")
            if p.is_file():
                out[name] = p.stat().st_size
        return out

    def boot_header(self, name: str) -> bytes | None:
        """The first 64 KiB of a /boot file: enough for any kernel image header.

        Snapshots keep these (base64 in their metadata) instead of whole kernels.
        """
        if not self.live and "boot_headers" in self.meta:
            text = self.meta["boot_headers"].get(name)
            if text is None:
                return self.data(f"/boot/{name}", limit=BOOT_HEADER)
            import base64

            return base64.b64decode(text)
        return self.data(f"/boot/{name}", limit=BOOT_HEADER)

    @cached_property
    def module_releases(self) -> list[str]:
        if not self.live and "modules" in self.meta:
            return [str(r) for r in self.meta["modules"]]
        return self.listdir("/lib/modules")

    # -- the dump target ------------------------------------------------------

    def free_bytes(self, target: str = DEFAULT_TARGET) -> int | None:
        """Free space for an unprivileged writer at the target (or the nearest existing parent)."""
        if not self.live:
            value = self.meta.get("targets", {}).get(target, {}).get("free_bytes")
            return None if value is None else int(value)
        path = Path(target)
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            st = os.statvfs(path)
        except OSError as e:
            self.unknown[target] = e.strerror or str(e)
            return None
        return st.f_bavail * st.f_frsize

    def dumps(self, target: str = DEFAULT_TARGET) -> list[DumpEntry]:
        """Dump directories under the target, oldest first by the crash time in their names
        (not by the names: hosts differ, and -10 sorts before -9). A directory with the
        crash's log and nothing more (the target had room for the log, not for the dump
        nor its save.json) is a dump that was not saved."""
        from kdumpctl_py.capture.dumpdir import name_order

        if not self.live:
            entries = self.meta.get("targets", {}).get(target, {}).get("dumps", [])
            return sorted((DumpEntry(str(e["name"]), bool(e["complete"]), int(e["bytes"]),
                                     e.get("saved")) for e in entries),
                          key=lambda e: name_order(e.name))
        out = []
        root = Path(target)
        for name in self.listdir(target) if root.is_dir() else []:
            d = root / name
            if not d.is_dir() or d.is_symlink():
                continue
            from kdumpctl_py.capture.dumpdir import DMESG
            from kdumpctl_py.capture.record import read_record, summary
            from kdumpctl_py.triage.found import dump_in

            files = [f.name for f in d.iterdir() if f.is_file()]
            dump = dump_in(str(d), files)  # the names `dumps` and `keep` know
            rec = dump.save if dump else read_record(str(d))
            log_only = dump is None and rec is None and DMESG in files
            if dump is None and not log_only and (rec is None or rec.get("saved") is not False):
                continue  # a save.json alone is a dump's only when it says none was saved
            out.append(DumpEntry(name, bool(dump and dump.complete), dump.bytes if dump else 0,
                                 summary(rec) if rec else
                                 f"no dump saved: only {DMESG} was written"
                                 if log_only else None))
        return sorted(out, key=lambda e: name_order(e.name))

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
