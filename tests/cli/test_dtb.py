"""`kdumpctl-py dtb build|show`, checked through dtc and the one-line error rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.errors import UsageError
from kdumpctl_py.units import parse_range, parse_size
from tests.builders import QEMU_DTB, board, cells, chosen_props, dts, memreserve

needs_dtc = pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc is not installed")
MiB = 1 << 20

BUILD = ["--usable-range", "0x50000000+256M", "--usable-range", "128M+0x1000000",
         "--elfcorehdr", "0x5ff00000+4K", "--initrd", "0x58000000+0x123456"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("kdumpctl-py: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("0x48000000", 0x48000000), ("512M", 512 * MiB), ("0x10k", 0x4000),
     ("1G", 1 << 30), ("2T", 2 << 40), ("0o17", 15), ("0b101", 5), (" 64K ", 65536)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "0x", "twelve", "010", "-5", "1.5G", "4KiB"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_parse_range() -> None:
    assert parse_range("0x48000000+16M") == (0x48000000, 16 * MiB)
    for bad in ("0x48000000", "0x48000000-0x49000000", "0x1000+0", "+4K", "4K+"):
        with pytest.raises(UsageError):
            parse_range(bad)


@needs_dtc
def test_build_from_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "capture.dtb"
    code = main(["dtb", "build", "--base", str(QEMU_DTB), *BUILD,
                 "--cmdline", "console=ttyAMA0 nr_cpus=1", "-o", str(out)])
    assert code == 0
    assert f"capture DTB written to {out}" in capsys.readouterr().out
    text = dts(out.read_bytes())
    props = chosen_props(text)
    assert props["linux,usable-memory-range"] == cells(
        (0x50000000, 2), (256 * MiB, 2), (128 * MiB, 2), (16 * MiB, 2))
    assert props["linux,elfcorehdr"] == cells((0x5FF00000, 2), (4096, 2))
    assert props["linux,initrd-start"] == cells((0x58000000, 2))
    assert props["linux,initrd-end"] == cells((0x58123456, 2))
    assert props["bootargs"] == '"console=ttyAMA0 nr_cpus=1"'
    assert {"kaslr-seed", "rng-seed", "linux,booted-from-kexec"} <= props.keys()
    assert memreserve(text) == [(0x58000000, 0x123456), (0x5FF00000, 4096)]
    assert [p.name for p in tmp_path.iterdir()] == ["capture.dtb"]  # no temporary left


@needs_dtc
def test_build_replaces_an_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "capture.dtb"
    out.write_bytes(b"old")
    assert main(["dtb", "build", "--base", str(QEMU_DTB), *BUILD, "-o", str(out)]) == 0
    assert "bootargs" not in chosen_props(dts(out.read_bytes()))


def _snapshot(root: Path, fdt: bytes | None) -> Path:
    """The least a --sysroot needs: the metadata file and, if given, /sys/firmware/fdt."""
    root.mkdir()
    (root / "kdumpctl-snapshot.json").write_text(json.dumps({"uname": {"machine": "aarch64"}}))
    if fdt is not None:
        (root / "sys/firmware").mkdir(parents=True)
        (root / "sys/firmware/fdt").write_bytes(fdt)
    return root


@needs_dtc
def test_build_defaults_to_the_views_fdt(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    root = _snapshot(tmp_path / "snap", QEMU_DTB.read_bytes())
    out = tmp_path / "capture.dtb"
    assert main(["--sysroot", str(root), "dtb", "build", *BUILD, "-o", str(out)]) == 0
    assert f"from {root.resolve()}/sys/firmware/fdt" in capsys.readouterr().out
    assert memreserve(dts(out.read_bytes())) == [(0x58000000, 0x123456), (0x5FF00000, 4096)]


def test_build_without_a_device_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _snapshot(tmp_path / "snap", None)
    out = tmp_path / "capture.dtb"
    assert main(["--sysroot", str(root), "dtb", "build", *BUILD, "-o", str(out)]) == 1
    assert "no boot device tree to start from (give --base FILE)" in one_line_error(capsys)
    assert not out.exists()


@needs_dtc
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--usable-range", "0x50000000+256M", "--elfcorehdr", "0x5ff00000"],
         "argument --elfcorehdr: '0x5ff00000' is not START+SIZE"),
        (["--usable-range", "zz+1", "--elfcorehdr", "1+1"], "argument --usable-range: 'zz'"),
        (["--elfcorehdr", "1+1"], "the following arguments are required: --usable-range"),
        (["--usable-range", "1+1", "--usable-range", "2+1", "--usable-range", "3+1",
          "--elfcorehdr", "1+1"], "give 1 to 2 usable memory ranges"),
        (["--usable-range", "0x100000000+1M", "--elfcorehdr", "1+1"],
         "linux,usable-memory-range address 0x100000000 does not fit in 1 cell"),
    ],
)
def test_build_refuses_bad_input(argv: list[str], message: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "one-cell.dtb"
    base.write_bytes(board(cells_lines="#address-cells = <1>;\n\t#size-cells = <1>;"))
    out = tmp_path / "capture.dtb"
    assert main(["dtb", "build", "--base", str(base), *argv, "-o", str(out)]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "only 0 bytes, too short for a device tree header"),
        (b"\x7fELF" + bytes(60), "not a device tree blob (magic 0x7f454c46"),
        (QEMU_DTB.read_bytes()[:200], "truncated: the header says"),
    ],
    ids=["empty", "elf", "truncated"],
)
def test_bad_base_file(content: bytes, message: str, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dtb"
    bad.write_bytes(content)
    out = tmp_path / "capture.dtb"
    assert main(["dtb", "build", "--base", str(bad), *BUILD, "-o", str(out)]) == 2
    assert f"{bad}: {message}" in one_line_error(capsys)
    assert main(["dtb", "show", str(bad)]) == 2
    assert f"{bad}: {message}" in one_line_error(capsys)


@pytest.mark.parametrize("name", ["missing.dtb", "."], ids=["missing", "directory"])
def test_a_file_that_cannot_be_read_is_bad_input(name: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: a missing DTB or a directory exited 1 where
    elfcorehdr show, dmesg and analyse exit 2 for the same input."""
    path = tmp_path / name
    assert main(["dtb", "show", str(path)]) == 2
    assert str(path) in one_line_error(capsys)
    out = tmp_path / "capture.dtb"
    assert main(["dtb", "build", "--base", str(path), *BUILD, "-o", str(out)]) == 2
    assert str(path) in one_line_error(capsys)
    assert not out.exists()


def test_show_a_capture_dtb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "capture.dtb"
    assert main(["dtb", "build", "--base", str(QEMU_DTB), *BUILD, "--cmdline", "nr_cpus=1",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["dtb", "show", str(out)]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in text.splitlines()
            if line.startswith("  ")}
    assert text.startswith(f"{out}: device tree version 17, ")
    assert "#address-cells 2, #size-cells 2" in text.splitlines()[0]
    assert rows["bootargs"] == '"nr_cpus=1"'
    assert rows["linux,usable-memory-range"] == (
        "0x50000000-0x5fffffff (256 MiB), 0x8000000-0x8ffffff (16 MiB)")
    assert rows["linux,elfcorehdr"] == "0x5ff00000-0x5ff00fff (4 KiB)"
    assert rows["linux,initrd-start"] == "0x58000000"
    assert rows["linux,initrd-end"] == "0x58123456 (initrd of 1.1 MiB)"
    assert rows["kaslr-seed"] == "present, 8 bytes"
    assert rows["rng-seed"] == "present, 128 bytes"
    assert rows["stdout-path"] == '"/pl011@9000000"'
    assert rows["linux,booted-from-kexec"] == "(empty)"
    assert rows["0x58000000-0x58123455"] == "(1.1 MiB)"
    assert rows["0x5ff00000-0x5ff00fff"] == "(4 KiB)"


@needs_dtc
def test_show_a_base_without_chosen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base.dtb"
    base.write_bytes(board(chosen=None, cells_lines="",
                           reserve="/memreserve/ 0x48000000 0x1000000;"))
    assert main(["dtb", "show", str(base)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "/chosen: none",
        "reservation map:",
        "  0x48000000-0x48ffffff (16 MiB)",
    ]


@needs_dtc
def test_show_decodes_other_properties(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "base.dtb"
    base.write_bytes(board(chosen='kaslr-seed = <0x0 0x0>;\n\t\tcompatible = "a", "b";\n'
                                  "\t\tlinux,elfcorehdr = <0x1 0x2 0x3>;\n"
                                  "\t\tsome-cells = <0x1 0xabc>;\n"
                                  "\t\tblob = [00 01 02 03 04];"))
    assert main(["dtb", "show", str(base)]) == 0
    rows = dict(line.strip().split(None, 1) for line in capsys.readouterr().out.splitlines()
                if line.startswith("  "))
    assert rows == {
        "kaslr-seed": "present, 8 bytes, all zero",
        "compatible": '"a", "b"',
        "linux,elfcorehdr": "malformed: 12 bytes are not whole (2+2)-cell (address, size) pairs",
        "some-cells": "<0x1 0xabc>",
        "blob": "5 bytes",
    }
