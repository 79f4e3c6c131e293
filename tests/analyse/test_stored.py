"""analysis.json: made once, trusted while it describes the dump beside it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdumpctl_py.analyse import stored
from kdumpctl_py.analyse.signature import VERSION
from tests.analyse import panics
from tests.analyse.dumps import ARCHES, DumpOf
from tests.builders import open_fds, panic_vmcore


def test_made_once_then_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vmcore = str(panic_vmcore(tmp_path / "vmcore", panics.OOPS_X86_64))
    data, made = stored.load_or_analyse(vmcore)
    assert made and data["signature"]["kind"] == "oops"
    assert data["dump_bytes"] == os.path.getsize(vmcore)
    assert json.loads((tmp_path / stored.NAME).read_text()) == data
    monkeypatch.setattr(stored, "analyse", lambda *a: pytest.fail("analysed twice"))
    assert stored.load_or_analyse(vmcore) == (data, False)


def test_stale_analyses_are_made_again(tmp_path: Path) -> None:
    vmcore = str(panic_vmcore(tmp_path / "vmcore", panics.BOOKWORM_X86_64))
    data = stored.analyse(vmcore)
    stored.store(vmcore, {**data, "dump_bytes": data["dump_bytes"] + 1})  # another file
    assert stored.load(vmcore) is None
    stored.store(vmcore, {**data, "signature": {**data["signature"], "version": VERSION - 1}})
    assert stored.load(vmcore) is None
    stored.store(vmcore, {**data, "vmcore": "vmcore-incomplete"})
    assert stored.load(vmcore) is None
    (tmp_path / stored.NAME).write_text("{not json")
    assert stored.load(vmcore) is None
    stored.store(vmcore, data)
    assert stored.load(vmcore) == data


def test_a_read_only_tree_is_analysed_without_storing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    vmcore = str(panic_vmcore(tmp_path / "vmcore", panics.BOOKWORM_X86_64))

    def refuse(*_args: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(stored, "store", refuse)
    data, made = stored.load_or_analyse(vmcore)
    assert made and data["signature"] and not (tmp_path / stored.NAME).exists()


def test_without_drgn_the_log_is_analysed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    import sys

    from kdumpctl_py.analyse import logonly

    monkeypatch.setitem(sys.modules, "drgn", None)  # import drgn raises ImportError
    vmcore = str(panic_vmcore(tmp_path / "vmcore", panics.BOOKWORM_X86_64))
    data = stored.analyse(vmcore)
    assert logonly.MISSING in data["missing"] and data["signature"]["kind"] == "panic"
    assert not any(w.startswith("drgn:") for w in data["warnings"])


def test_a_dump_drgn_cannot_open_is_analysed_from_its_log(tmp_path: Path) -> None:
    pytest.importorskip("drgn")
    vmcore = str(panic_vmcore(tmp_path / "vmcore", panics.BOOKWORM_X86_64))
    data = stored.analyse(vmcore)  # no kernel memory: drgn refuses it
    assert any(w.startswith("drgn: ") for w in data["warnings"]), data["warnings"]
    assert data["signature"]["frames"][0] == "sysrq_handle_crash"


def test_a_dump_cut_short_says_so_in_its_analysis(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: `analyse` says a cut dump is truncated on
    stderr only; the analysis.json that triage and report keep, which `dumps` reads, never
    did."""
    whole = panic_vmcore(tmp_path / "whole", panics.BOOKWORM_X86_64).read_bytes()
    cut = tmp_path / "vmcore"
    cut.write_bytes(whole[:-100])
    warnings = stored.analyse(str(cut))["warnings"]
    assert (f"the dump is truncated at {len(whole) - 100} of {len(whole)} bytes; the "
            "analysis shows what is there") in warnings, warnings


def _open_files() -> set[str]:
    return {os.path.realpath(f"/proc/self/fd/{fd}") for fd in open_fds()}


@pytest.mark.parametrize("arch", ARCHES)
def test_an_analysis_lets_go_of_its_program(crash_dump: DumpOf, arch: str,
                                            tmp_path: Path) -> None:
    """`report` and triage's workers analyse dump after dump in one process: once each
    analysis is made, drgn's program is gone with its files and debug info (kept, each
    would hold about 225 MB in that process, measured with an arm64 dump)."""
    dump = crash_dump(arch)
    assert dump.vmlinux is not None and dump.release is not None
    debug = tmp_path / "debug"
    (debug / "boot").mkdir(parents=True)
    (debug / "boot" / f"vmlinux-{dump.release}").symlink_to(dump.vmlinux)
    data = stored.analyse(str(dump.vmcore), [str(debug)])
    assert data["debuginfo"]["dwarf"]
    assert not _open_files() & {os.path.realpath(dump.vmcore), os.path.realpath(dump.vmlinux)}
