from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdumpctl_py.analyse.debuginfo import (
    MATCH,
    MISMATCH,
    NO_BUILD_ID,
    UNREADABLE,
    cache_root,
    candidates,
    check,
    elf_build_id,
    find_vmlinux,
)
from kdumpctl_py.errors import KdumpError, UsageError
from tests.builders import elf_with_id

ID = "3b43fad5034874490492495d552c0af6a5fab235"
OTHER = "0123456789abcdef0123456789abcdef01234567"
RELEASE = "6.1.0-56-cloud-amd64"


def test_elf_build_id(tmp_path: Path) -> None:
    assert elf_build_id(elf_with_id(tmp_path / "a", ID)) == ID
    assert elf_build_id(elf_with_id(tmp_path / "b", None)) is None
    (tmp_path / "c").write_bytes(b"not an elf at all")
    with pytest.raises(ValueError):
        elf_build_id(tmp_path / "c")


def test_check_verdicts(tmp_path: Path) -> None:
    good = elf_with_id(tmp_path / "good", ID)
    assert check(str(good), "x", ID).verdict == MATCH
    assert check(str(good), "x", OTHER).verdict == MISMATCH
    assert check(str(elf_with_id(tmp_path / "none", None)), "x", ID).verdict == NO_BUILD_ID
    (tmp_path / "junk").write_bytes(b"junk")
    assert check(str(tmp_path / "junk"), "x", ID).verdict == UNREADABLE
    unverified = check(str(good), "x", None)
    assert unverified.usable and unverified.build_id == ID


def test_candidates_cover_the_debian_and_fedora_layouts(tmp_path: Path) -> None:
    paths = dict(candidates(RELEASE, ID, ("/dbg",), tmp_path))
    assert paths[str(tmp_path / RELEASE / "vmlinux")] == "kdumpctl-py cache"
    assert paths[f"/dbg/.build-id/3b/{ID[2:]}.debug"] == "build-ID link"
    assert paths[f"/dbg/boot/vmlinux-{RELEASE}"] == "Debian -dbg layout"
    assert paths[f"/dbg/lib/modules/{RELEASE}/vmlinux"] == "Fedora debuginfo layout"
    assert f"/boot/vmlinux-{RELEASE}" in paths
    assert list(paths)[0] == str(tmp_path / RELEASE / "vmlinux")


def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "kdumpctl-py" / "debuginfo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == Path(os.path.expanduser("~/.cache/kdumpctl-py/debuginfo"))


@pytest.mark.parametrize("layout", [
    f"boot/vmlinux-{RELEASE}",
    f"lib/modules/{RELEASE}/vmlinux",
    f".build-id/3b/{ID[2:]}.debug",
])
def test_found_in_a_debug_directory(tmp_path: Path, layout: str) -> None:
    dbg = tmp_path / "debug"
    elf_with_id(dbg / layout, ID)
    found = find_vmlinux(ID, RELEASE, debug_dirs=(str(dbg),), cache=tmp_path / "cache")
    assert found.vmlinux == str(dbg / layout) and found.verdict == MATCH
    assert found.notes == ()


def test_a_mismatched_vmlinux_found_by_search_is_reported_and_skipped(tmp_path: Path) -> None:
    dbg = tmp_path / "dbg"
    elf_with_id(dbg / "boot" / f"vmlinux-{RELEASE}", OTHER)
    cached = elf_with_id(tmp_path / "cache" / RELEASE / "vmlinux", ID)
    found = find_vmlinux(ID.upper(), RELEASE, None, (str(dbg),), tmp_path / "cache")
    assert found.vmlinux == str(cached) and found.origin == "kdumpctl-py cache"
    found = find_vmlinux(ID, RELEASE, None, (str(dbg),), tmp_path / "nocache")
    assert found.vmlinux is None and found.checked[0].verdict == MISMATCH
    assert "does not match the dump" in found.notes[0] and OTHER in found.notes[0]


@pytest.mark.parametrize("build_id,machine,dump_arch,wrong", [
    (OTHER, 62, "x86_64", f"build ID {OTHER} for x86_64, the dump build ID {ID} for x86_64"),
    (OTHER, 62, "aarch64", f"build ID {OTHER} for x86_64, the dump build ID {ID} for aarch64"),
    (ID, 62, "aarch64", f"build ID {ID} for x86_64, the dump build ID {ID} for aarch64"),
    (None, 183, "aarch64", f"build ID none for aarch64, the dump build ID {ID} for aarch64"),
])
def test_a_given_vmlinux_that_does_not_match_is_an_error(
        tmp_path: Path, build_id: str | None, machine: int, dump_arch: str, wrong: str) -> None:
    """Named on the command line, a wrong vmlinux stops the analysis (issue 23, item 5)."""
    given = elf_with_id(tmp_path / "given", build_id, machine)
    elf_with_id(tmp_path / "cache" / RELEASE / "vmlinux", ID)
    with pytest.raises(KdumpError) as e:
        find_vmlinux(ID, RELEASE, str(given), (), tmp_path / "cache", arch=dump_arch)
    assert e.value.exit_code == 1 and str(e.value) == (
        f"--vmlinux {given} is not the dump's kernel: it has {wrong} "
        "(kdumpctl-py debuginfo find VMCORE lists the candidates)")


def test_a_dump_without_build_id_still_checks_the_architecture(tmp_path: Path) -> None:
    given = elf_with_id(tmp_path / "given", ID, machine=62)
    with pytest.raises(KdumpError, match="for x86_64, the dump build ID none for aarch64"):
        find_vmlinux(None, RELEASE, str(given), (), tmp_path / "cache", arch="aarch64")


def test_a_given_vmlinux_that_matches_wins(tmp_path: Path) -> None:
    given = elf_with_id(tmp_path / "given", ID)
    elf_with_id(tmp_path / "cache" / RELEASE / "vmlinux", ID)
    found = find_vmlinux(ID, RELEASE, str(given), (), tmp_path / "cache")
    assert found.vmlinux == str(given) and found.origin == "--vmlinux"


def test_nothing_found_says_where_it_looked(tmp_path: Path) -> None:
    found = find_vmlinux(ID, RELEASE, None, (str(tmp_path / "dbg"),), tmp_path / "cache")
    assert found.vmlinux is None and found.checked == ()
    assert str(tmp_path / "cache" / RELEASE / "vmlinux") in found.looked


def test_a_dump_without_build_id_uses_the_file_unverified(tmp_path: Path) -> None:
    given = elf_with_id(tmp_path / "given", ID)
    found = find_vmlinux(None, RELEASE, str(given), (), tmp_path / "cache")
    assert found.vmlinux == str(given) and "without verifying" in found.notes[0]


def test_a_missing_given_file_is_bad_usage(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        find_vmlinux(ID, RELEASE, str(tmp_path / "nope"))


def test_a_given_path_that_is_not_a_file_is_named_so(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: `--vmlinux DIR` (a debug directory, say) and
    `--vmlinux /dev/zero` were called 'no such file'."""
    with pytest.raises(UsageError, match=f"^--vmlinux {tmp_path}: not a regular file$"):
        find_vmlinux(ID, RELEASE, str(tmp_path))
