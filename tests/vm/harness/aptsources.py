"""Read the Debian archive URIs from this machine's own apt sources.

The repository never names a mirror: whatever mirror the host uses for its own
Debian suite is reused for the guest's suite, under a private apt configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class SourceEntry:
    """One `deb` source: a URI serving some suites (only main-component entries matter)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


@dataclass(frozen=True)
class Mirrors:
    """The archive URI for a suite and its updates, and the security archive URI."""

    archive: str
    archive_signed_by: str
    security: str | None
    security_signed_by: str


def parse_deb822(text: str) -> list[SourceEntry]:
    """Parse deb822 `.sources` text (stanzas separated by blank lines; '#' comments)."""
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
            entries.append(
                SourceEntry(
                    uri=uri.rstrip("/"),
                    suites=tuple(fields.get("suites", "").split()),
                    components=tuple(fields.get("components", "").split()),
                    signed_by=fields.get("signed-by"),
                )
            )
    return entries


def parse_one_line(text: str) -> list[SourceEntry]:
    """Parse one-line-style sources.list text: `deb [opts] URI SUITE COMPONENT...`."""
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
        if len(parts) < 2:
            continue
        entries.append(
            SourceEntry(parts[0].rstrip("/"), (parts[1],), tuple(parts[2:]), signed_by)
        )
    return entries


def machine_entries(etc: Path = Path("/etc/apt")) -> list[SourceEntry]:
    """All `deb` entries of this machine's apt configuration."""
    entries: list[SourceEntry] = []
    one_line = etc / "sources.list"
    if one_line.is_file():
        entries += parse_one_line(one_line.read_text())
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".sources":
                entries += parse_deb822(path.read_text())
            elif path.suffix == ".list":
                entries += parse_one_line(path.read_text())
    return entries


def find_mirrors(entries: list[SourceEntry]) -> Mirrors:
    """Pick the main archive (a plain or -updates suite) and the -security archive."""
    archive: SourceEntry | None = None
    security: SourceEntry | None = None
    for e in entries:
        if "main" not in e.components:
            continue
        if any(s.endswith("-security") or s.endswith("/updates") for s in e.suites):
            security = security or e
        elif any(re.fullmatch(r"[a-z]+(-updates)?", s) for s in e.suites):
            archive = archive or e
    if archive is None:
        raise HarnessError(
            "no Debian archive with component 'main' found in /etc/apt sources",
            hint="the harness reuses the host's own Debian mirror; configure apt first",
        )
    return Mirrors(
        archive=archive.uri,
        archive_signed_by=archive.signed_by or DEFAULT_KEYRING,
        security=security.uri if security else None,
        security_signed_by=(security.signed_by if security and security.signed_by
                            else DEFAULT_KEYRING),
    )


def private_sources(mirrors: Mirrors, suite: str) -> str:
    """deb822 text naming `suite`, its -updates and -security on the host's mirrors."""
    text = (
        f"Types: deb\nURIs: {mirrors.archive}\nSuites: {suite} {suite}-updates\n"
        f"Components: main\nSigned-By: {mirrors.archive_signed_by}\n"
    )
    if mirrors.security:
        text += (
            f"\nTypes: deb\nURIs: {mirrors.security}\nSuites: {suite}-security\n"
            f"Components: main\nSigned-By: {mirrors.security_signed_by}\n"
        )
    return text
