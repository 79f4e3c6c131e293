from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.builders import small_ring
from tests.capture.printk_rings import IMAGE, Ring, elf_vmcore


def vmcore(tmp_path: Path, ring: Ring, info: str | None = None) -> str:
    path = tmp_path / "vmcore"
    path.write_bytes(elf_vmcore(ring.memory(), info or ring.vmcoreinfo()))
    return str(path)


def test_prints_the_log_as_dmesg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dmesg", vmcore(tmp_path, small_ring())]) == 0
    out, err = capsys.readouterr()
    assert out == (
        "[    0.000000] Linux version 6.1.0\n"
        "[    5.758867] virtio_blk virtio0: [vda] 3145728 512-byte logical blocks\n"
        "[   17.079585] Kernel panic - not syncing: sysrq triggered crash\n"
        "               second line\n")
    assert err == ""


def test_decode_caller_and_kmsg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = vmcore(tmp_path, small_ring())
    assert main(["dmesg", "-x", "--caller", path]) == 0
    assert capsys.readouterr().out.splitlines()[2] == (
        "kern  :emerg : [   17.079585] [  T168] Kernel panic - not syncing: sysrq triggered crash")
    assert main(["dmesg", "--kmsg", path]) == 0
    assert capsys.readouterr().out.splitlines()[1:4] == [
        "6,1,5758867,-;virtio_blk virtio0: [vda] 3145728 512-byte logical blocks",
        " SUBSYSTEM=virtio",
        " DEVICE=+virtio:virtio0",
    ]


def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring = small_ring()
    ring.add(b"", fail=True)
    assert main(["dmesg", "--json", vmcore(tmp_path, ring)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["source"] == "printk_ringbuffer" and doc["warnings"] == []
    assert [r["seq"] for r in doc["records"]] == [0, 1, 2]
    assert doc["records"][1]["device"] == "+virtio:virtio0"
    assert doc["records"][2]["level"] == 0 and doc["records"][2]["caller"] == "T168"
    assert doc["lost"] == [{"seq": 3, "reason": "no-data"}]


def test_warnings_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring = small_ring()
    ring.infos[1].text_len = 500
    assert main(["dmesg", vmcore(tmp_path, ring)]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 4
    assert err.startswith("kdumpctl-py: warning: printk record 1: text length 500 exceeds")


def test_damaged_dump_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring = small_ring()
    mem = ring.memory()
    path = tmp_path / "vmcore"
    image = bytearray(mem[IMAGE])
    struct.pack_into("<I", image, 0x20, 60)  # count_bits
    mem[IMAGE] = bytes(image)
    path.write_bytes(elf_vmcore(mem, ring.vmcoreinfo()))
    assert main(["dmesg", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("kdumpctl-py: error: printk ring buffer sizes are implausible")


def test_missing_file_and_bad_options(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dmesg", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("kdumpctl-py: error: cannot open ")
    kdump = tmp_path / "dump.kdump"
    kdump.write_bytes(b"KDUMP   " + bytes(100))
    assert main(["dmesg", str(kdump)]) == 2
    assert "kdump-compressed file cut short" in capsys.readouterr().err
    assert main(["dmesg", "--json", "--kmsg", str(tmp_path / "none")]) == 2
    assert "not allowed with" in capsys.readouterr().err
