"""Every --json output carries `schema`, and docs/json.md lists exactly its top-level keys."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from kdumpctl_py.cli import build_parser, main
from tests.analyse.dumps import ARCHES, DumpOf
from tests.builders import small_ring
from tests.capture.printk_rings import elf_vmcore
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS

DOC = Path(__file__).resolve().parent.parent / "docs" / "json.md"
SNAP = str(SNAPSHOTS / SNAPSHOT_NAMES[0])
# Each command with --json, and how to run it here; analyse and debuginfo find need a real dump
# (tests/cli/test_analyse.py) and analyse is documented in docs/analyse-json.md.
RUNS: dict[str, list[str]] = {
    "status": ["--sysroot", SNAP, "status", "--json"],
    "showmem": ["--sysroot", SNAP, "showmem", "--json"],
    "estimate": ["--sysroot", SNAP, "estimate", "--json"],
    "crashkernel eval": ["crashkernel", "eval", "256M", "--ram", "4G", "--arch", "x86_64",
                         "--json"],
    "config show": ["--sysroot", SNAP, "config", "show", "--json"],
    "dmesg": ["dmesg", "VMCORE", "--json"],
    "dumps": ["dumps", "--json", "DIR"],
    "triage": ["triage", "--json", "DIR"],
}
ELSEWHERE = {"analyse", "debuginfo find"}


def documented() -> dict[str, set[str]]:
    """The keys of each command's table in docs/json.md."""
    out: dict[str, set[str]] = {}
    for section in re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]:
        title, _, body = section.partition("\n")
        m = re.fullmatch(r"`([a-z -]+?)(?: VMCORE)? --json`", title.strip())
        if m:
            out[m.group(1)] = set(re.findall(r"^\| `([a-z_]+)` \|", body, flags=re.M))
    return out


def json_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for action in parser._actions:
        if "--json" in action.option_strings:
            found.add(" ".join(path))
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # names, not aliases
                found |= json_commands(action.choices[choice.dest], (*path, choice.dest))
    return found


def test_every_json_output_is_covered() -> None:
    assert json_commands(build_parser()) == set(RUNS) | ELSEWHERE
    assert set(documented()) == set(RUNS) | {"debuginfo find"}


@pytest.mark.parametrize("command", sorted(RUNS))
def test_output_carries_schema_and_the_documented_keys(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ring = small_ring()
    vmcore = tmp_path / "vmcore"
    vmcore.write_bytes(elf_vmcore(ring.memory(), ring.vmcoreinfo()))
    argv = [{"VMCORE": str(vmcore), "DIR": str(tmp_path)}.get(a, a) for a in RUNS[command]]
    assert main(argv) in (0, 3)
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == 1
    assert set(report) == documented()[command]


def test_one_vocabulary_across_status_showmem_estimate(
        capsys: pytest.CaptureFixture[str]) -> None:
    reports = []
    for command in ("status", "showmem", "estimate"):
        main(RUNS[command])
        reports.append(json.loads(capsys.readouterr().out))
    for key in ("schema", "snapshot", "reserved", "requested", "ram"):
        assert reports[0][key] == reports[1][key] == reports[2][key], key
    assert reports[0]["snapshot"]["taken"]


@pytest.mark.parametrize("arch", ARCHES)
def test_debuginfo_find_on_a_real_dump(crash_dump: DumpOf, arch: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    dump = crash_dump(arch, vmlinux=False)
    main(["debuginfo", "find", str(dump.vmcore), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == 1 and set(report) == documented()["debuginfo find"]
