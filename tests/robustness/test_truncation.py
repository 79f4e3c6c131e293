"""Dumps cut short at every structure boundary: each reader says "truncated at N of M bytes"
and goes on with what is there, or stops with one line; never an internal error (issue 23,
item 4)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kdumpctl_py.capture.extent import truncation
from kdumpctl_py.capture.kdumpfile import (
    DISK_DUMP_HEADER,
    PAGE_DESC,
    PAGE_DESC_DTYPE,
    SUB_HEADER,
    read_kdump,
)
from kdumpctl_py.capture.save import SaveOptions, save_vmcore
from kdumpctl_py.cli import main
from kdumpctl_py.facts.elfcore import EHDR, PHDR
from tests.analyse.dumps import ARCHES, DumpOf
from tests.builders import busy_ring
from tests.capture.printk_rings import elf_vmcore
from tests.robustness.tally import record

COMMANDS = ("dmesg", "analyse") if importlib.util.find_spec("drgn") else ("dmesg",)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("cut")
    ring = busy_ring()
    elf = tmp / "elf"
    elf.write_bytes(elf_vmcore(ring.memory(), ring.vmcoreinfo()))
    out = {"elf": elf.read_bytes()}
    for codec in ("zstd", "zlib"):
        r = save_vmcore(str(elf), str(tmp / codec), SaveOptions(0, codec, progress=False))
        out[codec] = (Path(r.directory or "") / "vmcore").read_bytes()
    return out


def elf_boundaries(data: bytes) -> set[int]:
    fields = EHDR.unpack_from(data)
    phoff, phnum = fields[5], fields[10]
    cuts = {8, EHDR.size - 1, EHDR.size, phoff + PHDR.size, phoff + phnum * PHDR.size - 1}
    for i in range(phnum):
        _, _, offset, _, _, filesz, _, _ = PHDR.unpack_from(data, phoff + i * PHDR.size)
        cuts |= {offset, offset + 1, offset + filesz // 2, offset + filesz - 1}
    return cuts


def kdump_boundaries(path: Path) -> set[int]:
    dump = read_kdump(str(path))
    bs, h, s = dump.header.block_size, dump.header, dump.sub
    bitmaps = (1 + h.sub_hdr_size) * bs
    cuts = {8, DISK_DUMP_HEADER.size - 1, DISK_DUMP_HEADER.size, bs, bs + SUB_HEADER.size - 1,
            s.offset_note, s.offset_note + s.size_note // 2, s.offset_note + s.size_note - 1,
            s.offset_vmcoreinfo + s.size_vmcoreinfo // 2, bitmaps,
            bitmaps + h.bitmap_blocks * bs // 2, dump.descs_offset,
            dump.descs_offset + PAGE_DESC.size}
    dumped = int(np.count_nonzero(dump.bitmap2))
    cuts.add(dump.descs_offset + dumped * PAGE_DESC.size - 1)
    descs = np.frombuffer(path.read_bytes()[dump.descs_offset:][:dumped * PAGE_DESC.size],
                          PAGE_DESC_DTYPE)
    for offset, size in zip(descs["offset"].tolist(), descs["size"].tolist(), strict=True):
        cuts |= {offset, offset + 1, offset + size - 1}
    return cuts


def cut_points(name: str, data: bytes, tmp_path: Path) -> list[int]:
    whole = tmp_path / "whole"
    whole.write_bytes(data)
    cuts = elf_boundaries(data) if name == "elf" else kdump_boundaries(whole)
    return sorted(c for c in cuts | {len(data) - 1} if 0 < c < len(data))


@pytest.mark.parametrize("name", ["elf", "zstd", "zlib"])
def test_truncated_at_every_boundary(name: str, seeds: dict[str, bytes], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = seeds[name]
    for n in cut_points(name, data, tmp_path):
        path = tmp_path / f"vmcore-{n}"  # a new file: drgn may still map the last one
        path.write_bytes(data[:n])
        cut = truncation(str(path))
        assert cut is not None and str(cut).startswith(f"truncated at {n} of "), (n, cut)
        for command in COMMANDS:
            code = main([command, str(path)])
            out, err = capsys.readouterr()
            lines = err.splitlines()
            assert all(line.startswith("kdumpctl-py: ") for line in lines), (n, command, err)
            assert "internal error" not in err and f"truncated at {n} of " in err, \
                (n, command, err)
            if code:
                assert code in (1, 2) and lines[-1].startswith("kdumpctl-py: error: ")
                assert len(lines) - len([ln for ln in lines if "warning" in ln]) == 1
            record(f"truncated {name} ({command})", "refused" if code else "accepted")


def test_whole_dumps_are_not_called_truncated(seeds: dict[str, bytes], tmp_path: Path) -> None:
    for name, data in seeds.items():
        (tmp_path / name).write_bytes(data)
        assert truncation(str(tmp_path / name)) is None


def test_truncated_dmesg_goes_on_with_what_is_there(seeds: dict[str, bytes], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The records lie before the cut tail: none is lost, and the cut is named."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.write_bytes(seeds["elf"])
    cut.write_bytes(seeds["elf"][:-100])
    assert main(["dmesg", str(whole)]) == 0
    want = capsys.readouterr().out
    assert main(["dmesg", str(cut)]) == 0
    out, err = capsys.readouterr()
    size = len(seeds["elf"])
    assert out == want
    assert err == (f"kdumpctl-py: warning: {cut} is truncated at {size - 100} of {size} bytes; "
                   "what was past the end is missing\n")


@pytest.mark.parametrize("arch", ARCHES)
def test_real_dumps_cut_short(crash_dump: DumpOf, arch: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's cuts (3000 bytes, 5 MB, 20 MB) and the header boundaries of a crash-cycle
    dump: named truncated by analyse and dmesg, never an internal error."""
    dump = crash_dump(arch, vmlinux=False)
    data = dump.vmcore.read_bytes()
    bounds = (kdump_boundaries(dump.vmcore) if data[:8] == b"KDUMP   "
              else elf_boundaries(data))
    firsts = sorted(c for c in bounds if 0 < c < len(data))[:16]
    for n in sorted({*firsts, 3000, 5_000_000, 20_000_000}):
        if n >= len(data):
            continue
        path = tmp_path / f"vmcore-{n}"  # a new file: drgn may still map the last one
        path.write_bytes(data[:n])
        for command in COMMANDS:
            code = main([command, str(path)])
            err = capsys.readouterr().err
            assert f"truncated at {n} of " in err and "internal error" not in err, (n, err)
            assert code in (0, 1, 2)
