from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path

import pytest

from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.view import META, SystemView, cpulist
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS, expected_facts


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_fixture_facts(name: str) -> None:
    view = SystemView(SNAPSHOTS / name)
    want = expected_facts(name)
    assert view.arch.name == want["arch"]
    assert view.possible_cpus is not None and len(view.possible_cpus) == want["possible_cpus"]
    assert view.iomem is not None
    got = [[r.start, r.end] for r in view.iomem.crash_regions]
    assert got == want["regions"]
    assert view.probes == want["load_paths"]
    if want["regions"]:
        assert view.kexec_crash_size == sum(e - s + 1 for s, e in want["regions"])
        assert len(view.crash_notes) == want["possible_cpus"]
        assert view.vmcoreinfo is not None
        assert view.vmcoreinfo.osrelease == view.uname.release


def minimal_snapshot(tmp_path: Path) -> Path:
    (tmp_path / META).write_text(json.dumps({"uname": {"machine": "aarch64", "release": "6.1"}}))
    return tmp_path


def test_missing_files_are_unknown_not_errors(tmp_path: Path) -> None:
    view = SystemView(minimal_snapshot(tmp_path))
    assert view.arch.name == "aarch64"
    assert view.iomem is None and view.cmdline is None and view.kexec_crash_loaded is None
    assert view.crash_notes == [] and view.kcore is None and view.fdt is None
    assert view.lockdown is None and view.secure_boot is None and view.kernel_config is None
    assert view.probes == {} and view.free_bytes() is None and view.dumps() == []
    assert "/proc/iomem" in view.unknown


def test_malformed_files_are_unknown(tmp_path: Path) -> None:
    root = minimal_snapshot(tmp_path)
    (root / "proc").mkdir()
    (root / "proc/iomem").write_text("this is not iomem\n")
    (root / "proc/kcore").write_bytes(b"\x7fELF junk")
    (root / "sys/kernel").mkdir(parents=True)
    (root / "sys/kernel/kexec_crash_size").write_text("lots\n")
    (root / "sys/kernel/vmcoreinfo").write_text("nonsense\n")
    view = SystemView(root)
    assert view.iomem is None and view.kcore is None and view.vmcoreinfo is None
    assert view.kexec_crash_size is None and view.vmcoreinfo_note is None
    assert set(view.unknown) >= {"/proc/iomem", "/proc/kcore", "/sys/kernel/kexec_crash_size"}


def test_not_a_snapshot(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a kdumpctl-py snapshot"):
        SystemView(tmp_path)
    with pytest.raises(UsageError, match="not a directory"):
        SystemView(tmp_path / "nope")


def test_tarball_with_escaping_member_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escape")
        tar.addfile(info)
    with pytest.raises(UsageError, match="not a plain file"):
        SystemView(evil)


@pytest.mark.parametrize("cut", [None, 3000], ids=["not-gzip", "cut-short"])
def test_a_tarball_that_is_not_one_is_refused_in_one_line(tmp_path: Path,
                                                          cut: int | None) -> None:
    """Found giving --sysroot a .tar.gz that is not one: five lines naming tarfile's
    methods, and for a snapshot cut short an internal error (EOFError), exit 1."""
    bad = tmp_path / "snap.tar.gz"
    if cut is None:
        bad.write_bytes(bytes(range(256)) * 40)
    else:
        root = minimal_snapshot(tmp_path)
        (root / "padding").write_bytes(random.Random(0).randbytes(20000))
        with tarfile.open(tmp_path / "whole.tar.gz", "w:gz") as tar:
            tar.add(root / META, arcname=META)
            tar.add(root / "padding", arcname="padding")
        bad.write_bytes((tmp_path / "whole.tar.gz").read_bytes()[:cut])
    with pytest.raises(UsageError, match="not a readable snapshot archive") as e:
        SystemView(bad)
    assert "\n" not in str(e.value)


def test_lockdown_and_secure_boot(tmp_path: Path) -> None:
    root = minimal_snapshot(tmp_path)
    (root / "sys/kernel/security").mkdir(parents=True)
    (root / "sys/kernel/security/lockdown").write_text("none [integrity] confidentiality\n")
    efivars = root / "sys/firmware/efi/efivars"
    efivars.mkdir(parents=True)
    (efivars / "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(b"\x06\0\0\0\x01")
    view = SystemView(root)
    assert view.lockdown == "integrity" and view.secure_boot is True


def test_cpulist() -> None:
    assert cpulist("0-3,6,8-9\n") == [0, 1, 2, 3, 6, 8, 9]
    assert cpulist("0") == [0]


@pytest.mark.parametrize("rel", ["sys/kernel/kexec/file_fdset_types",
                                 "sys/kernel/kexec_file_fdset_types"])
def test_fdset_types_from_either_sysfs_file(tmp_path: Path, rel: str) -> None:
    root = minimal_snapshot(tmp_path)
    assert SystemView(root).kexec_file_fdset_types is None
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text("kernel initrd dtb\n")
    assert SystemView(root).kexec_file_fdset_types == "kernel initrd dtb"


def limited_snapshot(tmp_path: Path, panic: int, reboot: int) -> Path:
    """A snapshot whose kernel limits kexec loads, built with KEXEC_FILE and without KEXEC."""
    root = minimal_snapshot(tmp_path)
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/kexec_load_limit_panic").write_text(f"{panic}\n")
    (root / "proc/sys/kernel/kexec_load_limit_reboot").write_text(f"{reboot}\n")
    (root / "boot").mkdir()
    (root / "boot/config-6.1").write_text("CONFIG_KEXEC_FILE=y\n# CONFIG_KEXEC is not set\n")
    return root


def test_limited_loads_are_judged_from_config(tmp_path: Path) -> None:
    view = SystemView(limited_snapshot(tmp_path, panic=8, reboot=4))
    assert view.kexec_load_limits == {"panic": 8, "reboot": 4}
    assert view.probes == {"extended": "missing", "kexec_file_load": "available",
                           "kexec_load": "missing"}
    assert view.probes_skipped is not None
    assert "kexec_load_limit_panic=8" in view.probes_skipped
    assert "kexec_load_limit_reboot=4" in view.probes_skipped


def test_panic_limit_spent_is_not_permitted(tmp_path: Path) -> None:
    view = SystemView(limited_snapshot(tmp_path, panic=0, reboot=-1))
    assert view.probes["kexec_file_load"] == "not-permitted"


def test_unlimited_snapshot_keeps_recorded_probes(tmp_path: Path) -> None:
    view = SystemView(limited_snapshot(tmp_path, panic=-1, reboot=-1))
    assert view.probes == {} and view.probes_skipped is None


def test_a_live_view_probes_nothing_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probing is an act: the shell hands the answers in (load/probe.py), and no module
    under facts/ imports the layer that acts."""
    import ast

    import kdumpctl_py.load.syscalls as syscalls

    calls: list[int] = []

    def raw_syscall(nr: int, *args: int | None) -> int:
        calls.append(nr)
        return 22

    monkeypatch.setattr(syscalls, "raw_syscall", raw_syscall)
    view = SystemView("/")
    view.__dict__["kexec_load_limits"] = {"panic": -1, "reboot": -1}
    assert view.probes == {} and calls == []
    given = SystemView("/", probes={"extended": "missing", "kexec_file_load": "available",
                                    "kexec_load": "available"})
    given.__dict__["kexec_load_limits"] = {}
    assert given.probes["kexec_file_load"] == "available" and calls == []
    facts = Path(__file__).parents[2] / "kdumpctl_py" / "facts"
    for module in facts.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("kdumpctl_py.load"), module
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("kdumpctl_py.load") for a in node.names), module


def test_snapshot_probes_are_availabilities(tmp_path: Path) -> None:
    root = minimal_snapshot(tmp_path)
    meta = json.loads((root / META).read_text())
    meta["probes"] = {"kexec_load": "available", "kexec_file_load": "sideways"}
    (root / META).write_text(json.dumps(meta))
    assert SystemView(root).probes == {"kexec_load": "available", "kexec_file_load": "unknown"}


def test_live_dumps_count_flattened_ones(tmp_path: Path) -> None:
    """status counts what `dumps` and `keep` count: `vmcore.flat` (an ssh target's stream,
    `save --flat`) and its `-incomplete` too."""
    for name, vmcore in (("a-2026-12-01-10:00:00", "vmcore"),
                         ("b-2026-12-01-11:00:00", "vmcore.flat"),
                         ("c-2026-12-01-12:00:00", "vmcore.flat-incomplete"),
                         ("d-2026-12-01-13:00:00", "vmcore-incomplete")):
        (tmp_path / name).mkdir()
        (tmp_path / name / vmcore).write_bytes(b"x" * 10)
    dumps = SystemView("/").dumps(str(tmp_path))
    assert [(d.name[0], d.complete, d.bytes) for d in dumps] == [
        ("a", True, 10), ("b", True, 10), ("c", False, 10), ("d", False, 10)]


def test_dumps_are_in_the_order_of_their_crash_times(tmp_path: Path) -> None:
    """Found by review: status took the last name as the newest dump, so a host named
    zeus, or -9 after -10, hid the dump just saved."""
    for name in ("zeus-2024-01-01-00:00:00", "apollo-2025-12-01-00:00:00-10",
                 "apollo-2025-12-01-00:00:00-9", "apollo-2025-12-01-00:00:00"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "vmcore").write_bytes(b"x")
    assert [d.name for d in SystemView("/").dumps(str(tmp_path))] == [
        "zeus-2024-01-01-00:00:00", "apollo-2025-12-01-00:00:00",
        "apollo-2025-12-01-00:00:00-9", "apollo-2025-12-01-00:00:00-10"]


def test_a_crash_that_left_only_its_log_is_a_dump_not_saved(tmp_path: Path) -> None:
    """Found by review: a target with room for the log alone (not for the dump nor its
    save.json) left a directory status did not show, so it named an older dump newest."""
    (tmp_path / "h-2026-01-01-00:00:00").mkdir()
    (tmp_path / "h-2026-01-01-00:00:00" / "vmcore").write_bytes(b"x")
    (tmp_path / "h-2026-02-01-00:00:00").mkdir()
    (tmp_path / "h-2026-02-01-00:00:00" / "vmcore-dmesg.txt").write_text("Kernel panic\n")
    newest = SystemView("/").dumps(str(tmp_path))[-1]
    assert (newest.name, newest.complete, newest.saved) == (
        "h-2026-02-01-00:00:00", False, "no dump saved: only vmcore-dmesg.txt was written")
