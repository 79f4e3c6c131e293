"""VM tier: the systemd crash cycle (tests/vm/systemd_cycle.py) on x86_64 bookworm.

kdumpctl-py.service loads the capture kernel at boot, `kdumpctl-py test --yes`
crashes the guest, kdumpctl-py-capture.service saves the dump and reboots, and the
next boot's `kdumpctl-py status --json` shows the dump and the test's result.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.vm import systemd_cycle


@pytest.mark.vm
def test_systemd_cycle(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("systemd-cycle")
    handler = logging.FileHandler(out / "systemd-cycle.log")
    logging.getLogger("systemd-cycle").addHandler(handler)
    logging.getLogger("systemd-cycle").setLevel(logging.INFO)
    try:
        res = systemd_cycle.run_cycle(out)
    finally:
        logging.getLogger("systemd-cycle").removeHandler(handler)
    print(json.dumps(res.timings))
    assert res.error is None, res.error
    st = res.status
    assert st is not None, "run 2 wrote no status.json"
    assert st["operational"] and st["loaded"], st["reason"]
    dump = st["newest_dump"]
    assert dump and dump["complete"] and dump["bytes"] > 0
    assert f"{dump['name']}/vmcore" in res.dumps
    assert f"{dump['name']}/vmcore-dmesg.txt" in res.dumps
    # capture saved through the fallback chain at the first step, and status says so.
    assert f"{dump['name']}/save.json" in res.dumps
    assert dump["saved"] == "saved at -d 31", dump
    assert st["last_test"] and ": dump created, /var/crash/" + dump["name"] in st["last_test"]
    test_id = st["last_test"].split(":", 1)[0]
    assert f"{dump['name']}/kdumpctl-py-test-{test_id}.status" in res.dumps
    # kdumpctl-py.service's start said so at the second boot too, as Fedora's does.
    assert f"last test: {test_id}: dump created" in res.console
    dmesg = (out / "crash" / dump["name"] / "vmcore-dmesg.txt").read_text()
    assert "sysrq triggered crash" in dmesg
    # The next boot's report: analysis.json beside the dump (without drgn, which Debian 12
    # lacks: from the kernel log) and one journal entry with its fields.
    assert f"{dump['name']}/analysis.json" in res.dumps
    analysis = json.loads((out / "crash" / dump["name"] / "analysis.json").read_text())
    signature = analysis["signature"]
    assert signature["frames"] == ["sysrq_handle_crash", "__handle_sysrq",
                                   "write_sysrq_trigger"], signature
    (entry,) = res.reports
    assert entry["DUMP_PATH"] == f"/var/crash/{dump['name']}/vmcore"
    assert entry["PANIC"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert entry["SIGNATURE"] == signature["id"]
    assert entry["KERNEL_RELEASE"] == analysis["release"] and entry["BUILD_ID"]
    assert entry["_SYSTEMD_UNIT"] == "kdumpctl-py-report.service"
    console = res.console
    # kdump_pre and kdump_post ran as argument vectors, post with the status.
    assert "KDUMPCTL-VM: kdump_pre ran with: pre" in console
    assert "KDUMPCTL-VM: kdump_post ran with: post 0" in console
    # The capture command line: the unit added, cmdline_remove took the harness's
    # step marker off, crashkernel= gone.
    line = next(x for x in console.splitlines() if "KDUMPCTL-VM: capture cmdline:" in x)
    words = line.split("capture cmdline:", 1)[1].split()
    assert "systemd.unit=kdumpctl-py-capture.service" in words
    assert not any(w.startswith((systemd_cycle.STEP_PARAM, "crashkernel=")) for w in words)
    assert any(w.startswith("kdumpctl_py.test_id=") for w in words)
