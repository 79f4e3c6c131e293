from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from kdumpctl_py.analyse.apt import (
    DEFAULT_KEYRING,
    Apt,
    debian_mirrors,
    host_codename,
    machine_entries,
    parse_deb822,
    parse_one_line,
    parse_show,
    private_sources,
)
from kdumpctl_py.errors import KdumpError
from tests.builders import DEBIAN_SOURCES

NODE = """\
Types: deb
URIs: https://node.example/node_20.x
Suites: nodistro
Components: main
"""
ONE_LINE = ("deb https://vendor.example/apt cloud-sdk-bookworm main\n"
            "# deb http://old bookworm main\n")


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(ONE_LINE)
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)
    (tmp_path / "sources.list.d" / "nodesource.sources").write_text(NODE)
    return tmp_path


def test_parsers() -> None:
    entries = parse_deb822(DEBIAN_SOURCES)
    assert [(e.uri, e.suites) for e in entries] == [
        ("http://mirror.example/debian", ("bookworm", "bookworm-updates")),
        ("http://mirror.example/debian-security", ("bookworm-security",))]
    one = parse_one_line("deb [arch=amd64 signed-by=/k.gpg] http://m/debian/ trixie main contrib\n")
    assert one[0].uri == "http://m/debian" and one[0].signed_by == "/k.gpg"
    assert one[0].components == ("main", "contrib")
    assert parse_deb822("Types: deb\nEnabled: no\nURIs: http://x\nSuites: a\n") == []


def test_mirrors_are_the_hosts_debian_ones(etc: Path) -> None:
    m = debian_mirrors(machine_entries(etc), "bookworm")
    assert m.archive == "http://mirror.example/debian"
    assert m.security == "http://mirror.example/debian-security"
    assert m.archive_signed_by == DEFAULT_KEYRING
    text = private_sources(m, "trixie")
    assert "Suites: trixie trixie-updates" in text and "Suites: trixie-security" in text
    assert "URIs: http://mirror.example/debian\n" in text
    with pytest.raises(KdumpError, match="no Debian archive for sid"):
        debian_mirrors(machine_entries(etc), "sid")


def test_host_codename(tmp_path: Path) -> None:
    (tmp_path / "deb").write_text('ID=debian\nVERSION_CODENAME=bookworm\n')
    (tmp_path / "ubu").write_text('ID=ubuntu\nVERSION_CODENAME=noble\n')
    assert host_codename(tmp_path / "deb") == "bookworm"
    assert host_codename(tmp_path / "ubu") is None
    assert host_codename(tmp_path / "none") is None


def test_parse_show() -> None:
    text = ("Package: linux-image-6.1.0-56-cloud-amd64-dbg\nVersion: 6.1.192-2\n"
            "Architecture: amd64\nSize: 283308068\nDescription: Debug\n symbols\n\n"
            "Package: linux-image-6.1.0-56-cloud-amd64-dbg\nVersion: 6.1.192-1\n"
            "Architecture: amd64\n")
    found = parse_show(text)
    assert [(a.version, a.size) for a in found] == [("6.1.192-2", 283308068), ("6.1.192-1", None)]
    assert parse_show("") == []


def test_private_configuration_never_touches_the_machines_state(tmp_path: Path) -> None:
    calls: list[tuple[list[str], Path | None]] = []

    def run(argv: Sequence[str], cwd: Path | None) -> subprocess.CompletedProcess[str]:
        calls.append((list(argv), cwd))
        return subprocess.CompletedProcess(argv, 0, "", "")

    apt = Apt(run, tmp_path / "apt", "arm64", "Types: deb\n")
    apt.update()
    argv = calls[0][0]
    opts = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")
    assert opts["Dir::Etc::SourceList"] == "/dev/null"
    assert opts["Dir::State::Lists"] == f"{tmp_path}/apt/lists"
    assert opts["Dir::State::status"] == f"{tmp_path}/apt/state/status"
    assert opts["APT::Architecture"] == "arm64"
    assert (tmp_path / "apt" / "sources.list.d" / "debian.sources").read_text() == "Types: deb\n"
    assert Apt(run).options() == []


def test_failures_are_one_line(tmp_path: Path) -> None:
    def run(argv: Sequence[str], cwd: Path | None) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 100, "", "W: x\nE: Unable to locate package\n")

    with pytest.raises(KdumpError, match="failed: E: Unable to locate package"):
        Apt(run).download("p", "1", tmp_path)
    assert Apt(run).show("p") == []
