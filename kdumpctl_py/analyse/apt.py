"""apt for debug packages: the machine's own lists, or a private configuration for
another architecture or Debian suite that leaves the machine's apt state alone.

The mirror is never written down here: the private configuration reuses the
URIs (and keyrings) of this machine's own Debian sources, read at run time.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.fileio import replace_atomically

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# run(argv, cwd): a subprocess.run that captures text output and never raises on failure.
Runner = Callable[[Sequence[str], "Path | None"], "subprocess.CompletedProcess[str]"]

# Debian release numbers as they appear in kernel versions ("6.12.41+deb13-amd64").
CODENAMES = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie",
             "14": "forky", "15": "duke"}


def run_command(argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)


@dataclass(frozen=True)
class SourceEntry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


def parse_deb822(text: str) -> list[SourceEntry]:
    """`deb` entries of deb822 `.sources` text (stanzas split by blank lines)."""
    entries: list[SourceEntry] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key is not None:
                fields[key] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            entries.append(SourceEntry(uri.rstrip("/"), tuple(fields.get("suites", "").split()),
                                       tuple(fields.get("components", "").split()),
                                       fields.get("signed-by")))
    return entries


def parse_one_line(text: str) -> list[SourceEntry]:
    """`deb [options] URI SUITE COMPONENT...` lines of sources.list text."""
    entries: list[SourceEntry] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        signed_by = None
        if rest.startswith("["):
            opts, _, rest = rest[1:].partition("]")
            for opt in opts.split():
                k, _, v = opt.partition("=")
                if k == "signed-by":
                    signed_by = v
        parts = rest.split()
        if len(parts) >= 2:
            entries.append(SourceEntry(parts[0].rstrip("/"), (parts[1],), tuple(parts[2:]),
                                       signed_by))
    return entries


def machine_entries(etc: Path = Path("/etc/apt")) -> list[SourceEntry]:
    entries: list[SourceEntry] = []
    if (etc / "sources.list").is_file():
        entries += parse_one_line((etc / "sources.list").read_text())
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                entries += parse_deb822(path.read_text())
            elif path.suffix == ".list":
                entries += parse_one_line(path.read_text())
    return entries


def host_codename(os_release: Path = Path("/etc/os-release")) -> str | None:
    try:
        text = os_release.read_text()
    except OSError:
        return None
    fields = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
    if fields.get("ID", "").strip('"') != "debian":
        return None
    return fields.get("VERSION_CODENAME", "").strip('"') or None


@dataclass(frozen=True)
class Mirrors:
    archive: str
    archive_signed_by: str
    security: str | None
    security_signed_by: str


def debian_mirrors(entries: list[SourceEntry], codename: str) -> Mirrors:
    """The host's Debian archive (serving CODENAME) and security archive (CODENAME-security)."""
    archive = security = None
    for e in entries:
        if "main" not in e.components:
            continue
        if f"{codename}-security" in e.suites or f"{codename}/updates" in e.suites:
            security = security or e
        elif codename in e.suites or f"{codename}-updates" in e.suites:
            archive = archive or e
    if archive is None:
        raise KdumpError(f"no Debian archive for {codename} with component main in this "
                         "machine's apt sources: configure apt first")
    return Mirrors(archive.uri, archive.signed_by or DEFAULT_KEYRING,
                   security.uri if security else None,
                   (security.signed_by if security and security.signed_by else DEFAULT_KEYRING))


def private_sources(m: Mirrors, suite: str) -> str:
    """deb822 text naming `suite`, its -updates and -security on the host's mirrors."""
    text = (f"Types: deb\nURIs: {m.archive}\nSuites: {suite} {suite}-updates\n"
            f"Components: main\nSigned-By: {m.archive_signed_by}\n")
    if m.security:
        text += (f"\nTypes: deb\nURIs: {m.security}\nSuites: {suite}-security\n"
                 f"Components: main\nSigned-By: {m.security_signed_by}\n")
    return text


@dataclass(frozen=True)
class Available:
    name: str
    version: str
    arch: str
    size: int | None


def parse_show(text: str) -> list[Available]:
    """The stanzas of `apt-cache show`: one per available version."""
    out = []
    for stanza in re.split(r"\n\s*\n", text.strip()):
        fields = {}
        for line in stanza.splitlines():
            if line[:1].isspace():
                continue
            k, sep, v = line.partition(":")
            if sep:
                fields[k.strip().lower()] = v.strip()
        if "package" in fields and "version" in fields:
            size = fields.get("size")
            out.append(Available(fields["package"], fields["version"],
                                 fields.get("architecture", ""),
                                 int(size) if size and size.isdigit() else None))
    return out


def prepare_private(d: Path, sources: str | None) -> bool:
    """Lay out a private apt state directory; True if its sources were (re)written."""
    for sub in ("sources.list.d", "preferences.d", "lists/partial", "state",
                "cache/archives/partial"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    status = d / "state" / "status"
    if not status.exists():
        status.write_text("")  # nothing installed: closures come out whole
    if sources is None:
        return False
    path = d / "sources.list.d" / "debian.sources"
    if path.exists() and path.read_text() == sources:
        return False
    # Whole or not at all, under its name: another process may be reading it.
    replace_atomically(path, sources.encode(), backup=False)
    return True


def private_options(d: Path, arch: str | None, extra: dict[str, str] | None = None) -> list[str]:
    """apt's -o options that confine it to the private state directory `d`."""
    opts = {
        "Dir::Etc::SourceList": "/dev/null",
        "Dir::Etc::SourceParts": f"{d}/sources.list.d",
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": f"{d}/preferences.d",
        "Dir::State": f"{d}/state",
        "Dir::State::Lists": f"{d}/lists",
        "Dir::State::status": f"{d}/state/status",
        "Dir::Cache": f"{d}/cache",
        "Acquire::Languages": "none",
    }
    if arch:
        opts["APT::Architecture"] = arch
        opts["APT::Architectures::"] = arch
    if os.geteuid() == 0:
        # apt drops to _apt for downloads, which cannot write into root's cache.
        opts["APT::Sandbox::User"] = "root"
    opts.update(extra or {})
    out: list[str] = []
    for k, v in opts.items():
        out += ["-o", f"{k}={v}"]
    return out


class Apt:
    """apt-get/apt-cache, on the machine's lists or on a private state directory."""

    def __init__(self, run: Runner = run_command, private: Path | None = None,
                 arch: str | None = None, sources: str | None = None) -> None:
        self.run = run
        self.private = private
        self.arch = arch
        if private is not None:
            prepare_private(private, sources)

    def options(self) -> list[str]:
        if self.private is None:
            return []
        return private_options(self.private, self.arch)

    def _check(self, argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        try:
            r = self.run(argv, cwd)
        except FileNotFoundError:
            raise KdumpError(f"{argv[0]} is not installed; debuginfo fetch needs apt "
                             "(a Debian system)") from None
        if r.returncode != 0:
            detail = (r.stderr or r.stdout).strip().splitlines()
            raise KdumpError(f"{' '.join(argv[:1] + argv[-2:])} failed: "
                             f"{detail[-1] if detail else f'exit status {r.returncode}'}")
        return r

    def update(self) -> None:
        self._check(["apt-get", *self.options(), "-q", "update"])

    def show(self, name: str) -> list[Available]:
        """Every version of package `name` the lists know, or [] when there is none."""
        try:
            r = self.run(["apt-cache", *self.options(), "show", name], None)
        except FileNotFoundError:
            raise KdumpError("apt-cache is not installed; debuginfo fetch needs apt "
                             "(a Debian system)") from None
        if r.returncode != 0:
            return []
        return parse_show(r.stdout)

    def download(self, name: str, version: str, dest: Path) -> Path:
        """`apt-get download name=version` into dest; the .deb's path."""
        dest.mkdir(parents=True, exist_ok=True)
        before = set(dest.glob("*.deb"))
        self._check(["apt-get", *self.options(), "-q", "download", f"{name}={version}"], dest)
        new = sorted(set(dest.glob("*.deb")) - before)
        if not new:
            found = sorted(dest.glob(f"{name.split(':')[0]}_*.deb"))
            if not found:
                raise KdumpError(f"apt-get download {name} wrote no .deb in {dest}")
            return found[-1]
        return new[0]
