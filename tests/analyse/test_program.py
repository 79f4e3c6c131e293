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
