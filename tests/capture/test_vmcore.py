from __future__ import annotations

from pathlib import Path

import pytest

from kdumpctl_py.capture.vmcore import MissingMemory, Vmcore
from kdumpctl_py.errors import UsageError
from tests.elfwriter import note, vmcore_bytes

INFO = note(b"VMCOREINFO", 0, b"OSRELEASE=6.1\nPAGESIZE=4096\n")
LINEAR = 0xFFFF888000000000
TEXT = 0xFFFFFFFF81000000


def make(tmp_path: Path) -> Path:
    ram = bytes(range(256)) * 64  # 16 KiB at 1 MiB
    segs = [
        (TEXT, 0x101000, ram[0x1000:0x2000], 0x1000),  # kernel text repeats part of RAM
        (LINEAR + 0x100000, 0x100000, ram, 0x8000),  # 16 KiB on file, 32 KiB in memory
    ]
    path = tmp_path / "vmcore"
    path.write_bytes(vmcore_bytes(segs, INFO))
    return path


def test_reads_by_physical_and_virtual_address(tmp_path: Path) -> None:
    with Vmcore(str(make(tmp_path))) as v:
        assert v.vmcoreinfo.osrelease == "6.1" and v.page_size == 4096
        assert v.read_phys(0x100000, 4) == bytes([0, 1, 2, 3])
        assert v.read_phys(0x101000 + 5, 2) == bytes([5, 6])  # inside the text span
        assert v.read_phys(0x102FFE, 4) == bytes([254, 255, 0, 1])  # past the text span
        assert v.read_virt(TEXT + 1, 1) == bytes([1])
        assert v.read_virt(LINEAR + 0x103FFF, 3) == b"\xff\0\0"  # into the memsz-only tail
        assert v.read_u32(LINEAR + 0x100000) == 0x03020100
        with pytest.raises(MissingMemory):
            v.read_phys(0x108000, 1)
        assert v.phys_ranges()[0][:2] == (0x100000, 0x4000)


def test_phys_view_maps_what_read_phys_reads(tmp_path: Path) -> None:
    path = make(tmp_path)
    with Vmcore(str(path)) as v:
        view = v.phys_view(0x100000 + 100, 0x2000)
        assert view is not None and view.readonly
        assert bytes(view) == v.read_phys(0x100000 + 100, 0x2000)
        assert v.phys_view(0x103000, 0x2000) is None  # past p_filesz: zeros, not file data
        assert v.phys_view(0x108000, 1) is None  # no segment
    path.write_bytes(path.read_bytes()[:-0x1800])  # the RAM segment's last 6 KiB are gone
    with Vmcore(str(path), partial=True) as v:
        assert v.phys_view(0x100000, 0x1000) is not None
        assert v.phys_view(0x100000, 0x4000) is None  # never mapped past the file's end


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = make(tmp_path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UsageError, match="truncated"):
        Vmcore(str(path))


def test_no_vmcoreinfo_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "core"
    path.write_bytes(vmcore_bytes([(0, 0, b"x" * 16, 16)], note(b"CORE", 1, bytes(8))))
    with pytest.raises(UsageError, match="VMCOREINFO"):
        Vmcore(str(path))


@pytest.mark.parametrize(("machine", "want"), [("debian13-riscv64", ((0x80000000, 0x80000),)),
                                                ("debian13-arm64", ()),
                                                ("debian12-amd64", ())])
def test_firmware_memory_of_a_machine(machine: str, want: tuple[tuple[int, int], ...]) -> None:
    """OpenSBI's RAM on riscv64, which the save may find unreadable; none on the others
    (arm64's no-map regions are outside System RAM there, so never in a dump)."""
    from kdumpctl_py.capture.vmcore import firmware_memory_of
    from kdumpctl_py.facts.view import SystemView
    from tests.conftest import SNAPSHOTS

    assert firmware_memory_of(SystemView(SNAPSHOTS / machine)) == want


def test_firmware_memory_of_an_unknown_machine_is_none(tmp_path: Path) -> None:
    """Asked before every save in the capture kernel: an architecture this project does
    not know (loongarch64) must not stop the save."""
    import json

    from kdumpctl_py.capture.vmcore import firmware_memory_of
    from kdumpctl_py.facts.view import SystemView
    from tests.conftest import SNAPSHOTS

    meta = json.loads((SNAPSHOTS / "debian12-amd64/kdumpctl-snapshot.json").read_text())
    meta["uname"]["machine"] = "loongarch64"
    (tmp_path / "kdumpctl-snapshot.json").write_text(json.dumps(meta))
    assert firmware_memory_of(SystemView(tmp_path)) == ()


@pytest.mark.parametrize("size", ["4095", "0", "2048", "131072"])
def test_a_pagesize_no_kernel_has_is_bad_input(tmp_path: Path, size: str) -> None:
    """Found by review: PAGESIZE=4095 reached numpy as an internal error (a reshape)."""
    path = tmp_path / "vmcore"
    path.write_bytes(vmcore_bytes([(LINEAR, 0, bytes(4096), 4096)], note(
        b"VMCOREINFO", 0, f"OSRELEASE=6.1\nPAGESIZE={size}\n".encode())))
    with pytest.raises(UsageError, match=f"PAGESIZE={size} is not a page size"):
        Vmcore(str(path))
