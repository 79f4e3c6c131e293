"""VM tier: crash signatures and triage on real dumps of two kernels, both architectures
and two bugs.

Debian 12's 6.1 on x86_64 and Debian 13's 6.12 on arm64 crash through sysrq (the same
bug); Debian 12's x86_64 guest loads harness/oops.py's module, which oopses on a NULL
pointer with panic_on_oops=1 (another bug). The x86_64 sysrq cycle is test_crash_cycle's
(one run per session serves both); the other two are this test's. Their dumps, laid out
as a dump server's tree of hosts, must give two signatures: the same for both sysrq
dumps with DWARF (the harness's analysis) and without (triage on this host), another for
the oops; `triage` prints two groups.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kdumpctl_py.triage.found import name_parts
from tests.vm.cycles import REPO, Cycle

CYCLES = {
    "bookworm-x86": ("--arch", "x86_64"),
    "trixie-arm": ("--arch", "arm64", "--kernel-suite", "trixie"),
    "oops-x86": ("--arch", "x86_64", "--crash", "oops"),
}
SYSRQ_FRAMES = ["sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger"]


def kdumpctl(*argv: str) -> str:
    r = subprocess.run([sys.executable, "-m", "kdumpctl_py", *argv], cwd=REPO,
                       capture_output=True, text=True, check=False, timeout=1800)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.vm
@pytest.mark.cycle(*CYCLES["bookworm-x86"])
@pytest.mark.cycle(*CYCLES["trixie-arm"])
@pytest.mark.cycle(*CYCLES["oops-x86"])
def test_same_bug_one_signature_two_bugs_two_groups(cycles: Callable[..., Cycle],
                                                    tmp_path: Path) -> None:
    pytest.importorskip("drgn")
    server = tmp_path / "dumps"
    dwarf = {}
    for host, args in CYCLES.items():
        c = cycles(*args)
        assert c.exit_status == 0, c.explain()
        assert c.report["debuginfo"]["dwarf"], c.report["debuginfo"]
        dwarf[host] = c.report["signature"]
        (vmcore,) = sorted(c.out.glob("dumps/*/vmcore"))
        parts = name_parts(vmcore.parent.name)
        assert parts is not None, vmcore
        dump = server / host / f"{host}-{parts[1].replace('T', '-')}"
        dump.mkdir(parents=True)
        (dump / "vmcore").symlink_to(vmcore)  # analysis.json goes here, not into the run
    assert dwarf["bookworm-x86"] == dwarf["trixie-arm"], dwarf
    assert dwarf["bookworm-x86"]["frames"] == SYSRQ_FRAMES
    assert dwarf["oops-x86"]["id"] != dwarf["bookworm-x86"]["id"]
    assert dwarf["oops-x86"]["message"] == "kernel NULL pointer dereference"

    out = json.loads(kdumpctl("triage", "--json", str(server)))
    assert out["dumps"] == 3 and out["unsigned"] == [], out
    sysrq, oops = out["groups"]
    assert sysrq["signature"] == dwarf["bookworm-x86"]["id"]  # without DWARF: the same
    assert sysrq["hosts"] == ["bookworm-x86", "trixie-arm"] and sysrq["count"] == 2
    assert len(sysrq["kernels"]) == 2 and sysrq["kernels"][1].startswith("6.12.")
    assert oops["signature"] == dwarf["oops-x86"]["id"] and oops["count"] == 1
    assert oops["frames"][:2] == ["kdumpctl_oops_write", "kdumpctl_oops_init"]
    text = kdumpctl("triage", str(server))
    assert text.startswith("2 signatures in 3 dumps\n"), text
    listed = json.loads(kdumpctl("dumps", "--json", str(server)))["dumps"]
    assert sorted(r["signature"] for r in listed) == sorted(
        [sysrq["signature"]] * 2 + [oops["signature"]])
