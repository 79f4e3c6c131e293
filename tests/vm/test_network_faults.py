"""VM tier: the network faults in the capture kernel, one crash for all
(tests/vm/network_faults.py says how). Each ends in the failure action with its
reason in the journal, and no server holds a complete-looking dump."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path

import pytest

from kdumpctl_py.service.notify import DUMP_FAILED
from tests.localserver import free_port, tmpfs
from tests.service.sshd import sshd
from tests.vm import systemd_cycle
from tests.vm.network import GUEST_ADDRESS, SERVER
from tests.vm.network_faults import FaultGuest
from tests.vm.nfsd import PSEUDO, nfsd

COMPLETE = {"vmcore", "vmcore.flat"}


@pytest.mark.vm
def test_network_faults_end_in_the_failure_action(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("network-faults")
    handler = logging.FileHandler(out / "systemd-cycle.log")
    logging.getLogger("systemd-cycle").addHandler(handler)
    logging.getLogger("systemd-cycle").setLevel(logging.INFO)
    server_dir = out / "server"
    (server_dir / "full").mkdir(parents=True)
    tmpfs(server_dir / "full", "1m")  # vmcore-dmesg.txt fits, the dump does not
    try:
        with sshd(out / "sshd") as ssh, nfsd(out / "nfsd", size="1m") as nfs:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(out / "refused")], check=True)
            guest = FaultGuest(ssh.target.port or 22, nfs.port, (free_port(), free_port()),
                               Path(ssh.key), out / "refused", ssh.host_key, str(server_dir),
                               PSEUDO, ssh.target.user)
            dropper = ssh.drop_when_streaming(server_dir / "drop", seconds=900)
            res = systemd_cycle.run_cycle(out, guest, report=False)
            dropper.join(0)
            left = {str(p.relative_to(out)) for d in (server_dir, nfs.export)
                    for p in d.rglob("*") if p.is_file()}
    finally:
        subprocess.run(["umount", str(server_dir / "full")], check=False)
        logging.getLogger("systemd-cycle").removeHandler(handler)
    print(json.dumps(res.timings))
    assert res.error is None, res.error
    faults = guest.faults()
    text = res.console
    for f in faults[:-1]:
        block = text.split(f"KDUMPCTL-VM: fault {f.name} begin", 1)[1].split(
            f"KDUMPCTL-VM: fault {f.name} end", 1)[0]
        assert "final step: reboot (not done: --no-action)" in block, (f.name, block[-2000:])
        assert "no dump saved: " in block, (f.name, block[-2000:])
    assert f"KDUMPCTL-VM: fault {faults[-1].name} by the service" in text
    assert "kdumpctl-py: reboot: systemctl reboot -f" in text  # the real failure action
    entries = systemd_cycle.journal(out / "journal", "SYSLOG_IDENTIFIER=kdumpctl-py")
    failed = [e for e in entries if e.get("MESSAGE_ID") == DUMP_FAILED]
    reasons = [e["MESSAGE"] for e in failed]
    assert len(reasons) == len(faults), reasons
    for f, reason in zip(faults, reasons, strict=True):
        assert re.search(f.says, reason), (f.name, reason)
    assert failed[-1]["_SYSTEMD_UNIT"] == "kdumpctl-py-capture.service"
    # The route: the first kernel's check (kdumpctl-py start) and each capture that
    # reached the server (all but the NFS mount that failed) name the guest's address.
    said = [e["MESSAGE"] for e in entries]
    address = GUEST_ADDRESS.split("/")[0]
    checked = [m for m in said if m.startswith(f"ssh target {guest.user}@{SERVER}:")]
    assert checked and checked[0].endswith(f" ({address})"), said
    routes = [m for m in said if m.startswith(f"the server {SERVER} is reached through ")]
    assert len(routes) == len(faults) - 1 and all(m.endswith(f" ({address})")
                                                  for m in routes), said
    assert not any(Path(p).name in COMPLETE for p in left), left
    for partial in ("full", "drop"):  # the stream began: only vmcore-incomplete is there
        assert any(p.startswith(f"server/{partial}/") and p.endswith("/vmcore-incomplete")
                   for p in left), left
    (result,) = (out / "kdumpctl-py").glob("kdumpctl-py-test-*.status")
    assert "Permission denied" in result.read_text()
