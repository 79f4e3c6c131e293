"""Opening a dump for analysis: what is missing is said, never an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.synthetic_vmcore import write_vmcore


def test_a_dump_without_kallsyms_in_vmcoreinfo_is_analysed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: without a vmlinux, a kernel whose VMCOREINFO lacks the kallsyms
    symbols (every one before 6.0, Debian 11's 5.10 among them) ended analyse with an
    internal error (drgn's MissingDebugInfoError) instead of the report it can give."""
    vmcore = tmp_path / "vmcore"
    write_vmcore(str(vmcore), 128 << 20)
    assert main(["analyse", str(vmcore), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] and any("kallsyms could not be read" in w
                                    for w in report["warnings"])


def test_a_damaged_page_descriptor_is_refused_before_drgn_maps_it(tmp_path: Path) -> None:
    """Found by review: a descriptor saying its page's data is nearly 4 GiB made drgn's
    reader map past the end of the file: analyse died of SIGBUS with nothing said, and
    report, which analyses every dump at boot, died at the same dump each time."""
    import os
    import subprocess
    import sys

    from kdumpctl_py.capture.kdumpfile import PAGE_DESC, read_kdump
    from kdumpctl_py.capture.save import SaveOptions, save_vmcore

    vmcore = tmp_path / "vmcore"
    write_vmcore(str(vmcore), 128 << 20)
    result = save_vmcore(str(vmcore), str(tmp_path / "crash"),
                         SaveOptions(31, "zlib", progress=False))
    dump = Path(result.directory or "") / "vmcore"
    descs = read_kdump(str(dump)).descs_offset
    with open(dump, "r+b") as f:
        os.pwrite(f.fileno(), (0xFFFFFFF0).to_bytes(4, "little"), descs + 8 + PAGE_DESC.size)
    run = subprocess.run([sys.executable, "-m", "kdumpctl_py", "analyse", str(dump)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run
    assert run.stderr.endswith("page descriptor 1 is damaged (its data would be larger than a "
                               "page), so drgn cannot read the dump safely; kdumpctl-py dmesg "
                               "may still read its log\n")


def test_an_incomplete_dump_is_said_to_be(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: analyse of a save cut short said nothing of it ("PANIC: none found"
    read as "no panic"). An ELF dump says so by e_flags bit 0 (makedumpfile's mark), a
    kdump-compressed one by its header, and either by its name."""
    import os

    from kdumpctl_py.analyse.report import INCOMPLETE

    vmcore = tmp_path / "vmcore"
    write_vmcore(str(vmcore), 128 << 20)
    assert main(["analyse", str(vmcore), "--json"]) == 0
    assert INCOMPLETE not in json.loads(capsys.readouterr().out)["missing"]
    with open(vmcore, "r+b") as f:
        os.pwrite(f.fileno(), (1).to_bytes(4, "little"), 48)  # e_flags
    assert main(["analyse", str(vmcore), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing"][0] == INCOMPLETE


def test_a_dump_drgn_cannot_open_gets_the_kernel_logs_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: analyse gave up on a dump drgn refuses (here its VMCOREINFO has no
    OSRELEASE) where dmesg reads the log and report and triage get the crash from it."""
    from tests.analyse import panics
    from tests.builders import panic_vmcore

    vmcore = panic_vmcore(tmp_path / "vmcore", panics.BOOKWORM_X86_64)
    data = vmcore.read_bytes()
    vmcore.write_bytes(data.replace(b"OSRELEASE=", b"OSRELEASX=", 1))
    assert main(["analyse", str(vmcore), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["panic_message"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert report["missing"][0].startswith("drgn could not open the dump (")
