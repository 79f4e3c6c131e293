from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kdumpctl_py.analyse.debuginfo import Found
from kdumpctl_py.analyse.model import Report
from kdumpctl_py.analyse.report import debuginfo_of

ID = "3b43fad5034874490492495d552c0af6a5fab235"


def opened(found: Found, dwarf: bool, vmlinux: str | None) -> Any:
    return SimpleNamespace(found=found, dwarf=dwarf, vmlinux=vmlinux, kallsyms=not dwarf,
                           missing_modules=["virtio"] if dwarf else [])


def test_the_matched_file_is_verified() -> None:
    found = Found(ID, "6.1", "/v", "--vmlinux", "match")
    d = debuginfo_of(opened(found, True, "/v"))
    assert d.dwarf and d.verified and d.origin == "--vmlinux" and d.missing_modules == ["virtio"]


def test_drgns_own_find_is_said_so() -> None:
    d = debuginfo_of(opened(Found(ID, "6.1"), True, "/usr/lib/debug/x.debug"))
    assert d.origin == "drgn's search" and d.verified


def test_a_matching_file_without_dwarf_gets_a_note() -> None:
    found = Found(ID, "6.1", "/boot/vmlinux-6.1", "/boot", "match")
    d = debuginfo_of(opened(found, False, None))
    assert not d.dwarf and d.origin is None and not d.verified
    assert "found no DWARF in it" in d.notes[-1]


def test_a_failing_part_becomes_a_warning() -> None:
    r = Report("v", "ELF", debuginfo_of(opened(Found(None, None), False, None)))

    def boom() -> int:
        raise LookupError("could not find 'runqueues'")

    assert r.attempt("tasks", boom) is None
    assert r.attempt("ok", lambda: 3) == 3
    assert r.warnings == ["tasks: LookupError: could not find 'runqueues'"]


def test_the_parts_of_a_report_do_not_import_what_gathers_them() -> None:
    """analyse/ has no import cycle: the gatherers and render take the data from model."""
    import subprocess
    import sys

    parts = ("kernlog", "memory", "modules", "nodwarf", "render", "signature", "system",
             "taint", "tasks")
    code = ("import sys\n"
            f"for name in {parts!r}:\n"
            "    __import__('kdumpctl_py.analyse.' + name)\n"
            "assert 'kdumpctl_py.analyse.report' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
