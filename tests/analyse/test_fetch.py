from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from kdumpctl_py.analyse.apt import Available
from kdumpctl_py.analyse.fetch import (
    DumpKernel,
    Fetcher,
    debian_version,
    package_names,
    pick,
    suite_of,
)
from kdumpctl_py.errors import KdumpError, UsageError
from tests.builders import DEBIAN_SOURCES, elf_with_id

ID = "3b43fad5034874490492495d552c0af6a5fab235"
RELEASE = "6.1.0-56-cloud-amd64"
DBG = f"linux-image-{RELEASE}-dbg"


def test_names_versions_and_suites() -> None:
    assert package_names(RELEASE) == [DBG, f"linux-image-{RELEASE}-unsigned-dbg"]
    assert debian_version("#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)") == "6.1.192-2"
    assert debian_version("#1 SMP Mon Jan 1") is None and debian_version(None) is None
    assert suite_of("6.12.41+deb13-cloud-arm64", None) == "trixie"
    assert suite_of(RELEASE, "#1 SMP Debian 6.1.129-1~deb11u1 (2025)") is None
    assert suite_of(RELEASE, "#1 SMP Debian 5.10.1+deb11u1") == "bullseye"
    assert suite_of(RELEASE, None) is None
    a = [Available(DBG, "6.1.192-2", "amd64", 1), Available(DBG, "6.1.192-1", "amd64", 1)]
    assert pick(a, "6.1.192-1") == a[1] and pick(a, "9") == a[0] and pick(a, None) == a[0]
    assert pick([], None) is None


@pytest.fixture
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A -dbg package as Debian lays it out, with a tiny vmlinux of build ID ID."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    root = tmp_path_factory.mktemp("pkg")
    elf_with_id(root / "usr/lib/debug/boot" / f"vmlinux-{RELEASE}", ID)
    (root / "usr/lib/debug/lib/modules" / RELEASE / "kernel").mkdir(parents=True)
    (root / "usr/lib/debug/lib/modules" / RELEASE / "kernel" / "virtio.ko").write_bytes(b"ko")
    (root / "usr/lib/debug/lib/modules" / RELEASE / "vmlinux").symlink_to(
        f"../../../boot/vmlinux-{RELEASE}")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        f"Package: {DBG}\nVersion: 6.1.192-2\nArchitecture: amd64\n"
        "Maintainer: t <t@example.org>\nDescription: test\n")
    out = root.parent / f"{DBG}_6.1.192-2_amd64.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    return out


class FakeApt:
    """Answers dpkg/apt-cache/apt-get as a machine of `host` arch whose lists hold `have`."""

    def __init__(self, deb: Path, host: str, have: dict[str, str]) -> None:
        self.deb, self.host, self.have = deb, host, have
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], cwd: Path | None) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        ok = subprocess.CompletedProcess(argv, 0, "", "")
        if argv[:2] == ["dpkg", "--print-architecture"]:
            return subprocess.CompletedProcess(argv, 0, self.host + "\n", "")
        if argv[0] == "apt-cache":
            name = argv[-1]
            if name not in self.have:
                return subprocess.CompletedProcess(argv, 100, "", "E: No packages found")
            stanza = (f"Package: {name.split(':')[0]}\nVersion: {self.have[name]}\n"
                      f"Architecture: {name.partition(':')[2] or self.host}\nSize: 1048576\n")
            return subprocess.CompletedProcess(argv, 0, stanza, "")
        if argv[0] == "apt-get" and "download" in argv:
            assert cwd is not None
            shutil.copy(self.deb, cwd / self.deb.name)
        return ok


def kernel(arch: str = "amd64", build_id: str | None = ID) -> DumpKernel:
    return DumpKernel(RELEASE, build_id, arch, "6.1.192-2")


def fetcher(tmp_path: Path, fake: FakeApt, messages: list[str]) -> Fetcher:
    etc = tmp_path / "etc"
    (etc / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (etc / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)
    (tmp_path / "os-release").write_text("ID=debian\nVERSION_CODENAME=bookworm\n")
    return Fetcher(tmp_path / "cache" / "debuginfo", fake, messages.append, etc,
                   tmp_path / "os-release")


def test_fetch_from_the_machines_own_lists(tmp_path: Path, deb: Path) -> None:
    fake = FakeApt(deb, "amd64", {DBG: "6.1.192-2"})
    messages: list[str] = []
    path = fetcher(tmp_path, fake, messages).fetch(kernel())
    assert path == tmp_path / "cache" / "debuginfo" / RELEASE / "vmlinux"
    assert path.is_file() and not path.is_symlink()
    download = next(c for c in fake.calls if "download" in c)
    assert download[-1] == f"{DBG}=6.1.192-2" and "-o" not in download
    assert not any(p.suffix == ".deb" for p in (tmp_path / "cache").rglob("*"))
    assert not list((tmp_path / "cache" / "debuginfo").glob(".fetch-*"))
    assert any("downloading" in m and "(1 MiB)" in m for m in messages)
    # Once cached, nothing is downloaded again.
    fake.calls.clear()
    assert fetcher(tmp_path, fake, messages).fetch(kernel()) == path
    assert fake.calls == [] and "already cached" in messages[-1]


def test_fetch_for_a_foreign_arch_uses_a_private_apt(tmp_path: Path, deb: Path) -> None:
    fake = FakeApt(deb, "amd64", {f"{DBG}:arm64": "6.1.192-2"})
    fetcher(tmp_path, fake, []).fetch(kernel("arm64"))
    private = tmp_path / "cache" / "debuginfo" / "apt" / "bookworm-arm64"
    update = next(c for c in fake.calls if c[-1] == "update")
    assert f"Dir::State::Lists={private}/lists" in update
    assert "APT::Architecture=arm64" in update
    sources = (private / "sources.list.d" / "debian.sources").read_text()
    assert "URIs: http://mirror.example/debian\n" in sources
    download = next(c for c in fake.calls if "download" in c)
    assert download[-1] == f"{DBG}:arm64=6.1.192-2"


def test_a_named_cache_is_the_only_directory_written(tmp_path: Path, deb: Path) -> None:
    """Found by the new-administrator sweep: `debuginfo fetch --cache DIR` wrote its
    private apt configuration (19 MB of package lists) into DIR's parent, DIR/../apt."""
    fetcher(tmp_path, FakeApt(deb, "amd64", {f"{DBG}:arm64": "6.1.192-2"}), []).fetch(
        kernel("arm64"))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["debuginfo"]
    assert (tmp_path / "cache" / "debuginfo" / "apt" / "bookworm-arm64").is_dir()


def test_a_cache_that_is_not_a_directory_is_refused_before_apt_runs(tmp_path: Path,
                                                                    deb: Path) -> None:
    """Found by the sweep: `--cache FILE` read a suite's package lists and said it was
    downloading 250 MiB before failing on `FILE: File exists`, exit 1."""
    fake = FakeApt(deb, "amd64", {f"{DBG}:arm64": "6.1.192-2"})
    f = fetcher(tmp_path, fake, [])
    f.cache.parent.mkdir(parents=True)
    f.cache.write_bytes(b"")
    with pytest.raises(UsageError, match=f"^--cache {f.cache} is not a directory$"):
        f.fetch(kernel("arm64"))
    assert fake.calls == []


def test_a_package_of_another_build_is_not_cached(tmp_path: Path, deb: Path) -> None:
    fake = FakeApt(deb, "amd64", {DBG: "6.1.192-2"})
    with pytest.raises(KdumpError, match="has build ID 3b43.*another upload"):
        fetcher(tmp_path, fake, []).fetch(kernel(build_id="00" * 20))
    assert not (tmp_path / "cache" / "debuginfo" / RELEASE).exists()


def test_no_package_anywhere(tmp_path: Path, deb: Path) -> None:
    fake = FakeApt(deb, "amd64", {})
    with pytest.raises(KdumpError, match=f"none of {DBG}, .*-unsigned-dbg"):
        fetcher(tmp_path, fake, []).fetch(kernel())
