"""VM tier: the systemd crash cycle with an ssh and with an NFS target (tests/vm/network.py).

The test's own server (OpenSSH's sshd, nfs-ganesha) listens on 127.0.0.1; the
guest reaches it only through QEMU's user-mode network with restrict=on and one
guestfwd. The capture kernel starts the guest's network and saves the dump on
the server (over ssh the server's kdumpctl-py, this checkout, reassembles it);
the next boot's status shows the test's result with the dump's location, and its
target check (the export mounted from the first kernel too) the guest's route.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.sshd import sshd
from tests.vm import systemd_cycle
from tests.vm.network import GUEST_ADDRESS, SERVER, NfsGuest, SshGuest
from tests.vm.nfsd import PSEUDO, nfsd

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = GUEST_ADDRESS.split("/")[0]  # the route's source address, in both kernels


def logged(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / "systemd-cycle.log")
    logging.getLogger("systemd-cycle").addHandler(handler)
    logging.getLogger("systemd-cycle").setLevel(logging.INFO)
    return handler


def analysed(vmcore: Path) -> dict[str, object]:
    """kdumpctl-py analyse --json (drgn; no DWARF needed for the panic message)."""
    report = subprocess.run(
        [sys.executable, "-m", "kdumpctl_py", "analyse", str(vmcore), "--json"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    data: dict[str, object] = json.loads(report.stdout)
    return data


@pytest.mark.vm
def test_systemd_cycle_to_an_ssh_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("systemd-ssh-cycle")
    handler = logged(out)
    dumps = out / "server-dumps"
    try:
        with sshd(out / "sshd") as server:
            server.install_kdumpctl()
            guest = SshGuest(server.target.port or 22, Path(server.key), server.host_key,
                             str(dumps), server.target.user)
            res = systemd_cycle.run_cycle(out, guest)
    finally:
        logging.getLogger("systemd-cycle").removeHandler(handler)
    print(json.dumps(res.timings))
    assert res.error is None, res.error
    (d,) = dumps.iterdir()
    assert sorted(p.name for p in d.iterdir()) == ["save.json", "vmcore", "vmcore-dmesg.txt"]
    assert json.loads((d / "save.json").read_text())["how"] == "at -d 31 over ssh"
    assert "sysrq triggered crash" in (d / "vmcore-dmesg.txt").read_text()
    st = res.status
    assert st is not None, "run 2 wrote no status.json"
    assert st["operational"] and st["loaded"], st["reason"]
    check = st["target_check"]
    assert check["ok"] is True and check["target"] == f"{guest.user}@{SERVER}:{dumps}"
    assert check["route"] and check["route"].endswith(f" ({ADDRESS})"), check
    assert check["free_bytes"] > check["dump_bytes"] > 0 and check["warning"] is None
    assert st["last_test"] and f": dump created, {guest.user}@{SERVER}:{d}" in st["last_test"]
    line = next(x for x in res.console.splitlines() if "KDUMPCTL-VM: capture cmdline:" in x)
    assert "systemd.wants=network-online.target" in line.split()
    assert "sysrq triggered crash" in str(analysed(d / "vmcore")["panic_message"])
    assert res.reports == []  # the next boot leaves an ssh target's dumps to the server


@pytest.mark.vm
def test_systemd_cycle_to_an_nfs_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("systemd-nfs-cycle")
    handler = logged(out)
    try:
        with nfsd(out / "nfsd") as server:
            guest = NfsGuest(server.port, PSEUDO)
            res = systemd_cycle.run_cycle(out, guest)
    finally:
        logging.getLogger("systemd-cycle").removeHandler(handler)
    print(json.dumps(res.timings))
    assert res.error is None, res.error
    (d,) = (server.export / guest.path.lstrip("/")).iterdir()
    names = {p.name for p in d.iterdir()}
    assert {"vmcore", "vmcore-dmesg.txt", "save.json"} <= names and \
        not any(n.endswith("-incomplete") for n in names)
    st = res.status
    assert st is not None, "run 2 wrote no status.json"
    assert st["operational"] and st["loaded"], st["reason"]
    check = st["target_check"]  # the first kernel mounted the export and wrote there
    assert check["ok"] is True and "mountable, writable" in check["detail"], check
    assert check["route"] and check["route"].endswith(f" ({ADDRESS})"), check
    assert st["last_test"] and f": dump created, {SERVER}:{PSEUDO}/crash/{d.name}" \
        in st["last_test"]
    assert "sysrq triggered crash" in str(analysed(d / "vmcore")["panic_message"])
    # The next boot's report mounted the export: analysis.json beside the dump on the
    # server, and the journal names the dump as the export does.
    assert json.loads((d / "analysis.json").read_text())["signature"]["frames"][0] == \
        "sysrq_handle_crash"
    (entry,) = res.reports
    assert entry["DUMP_PATH"] == f"{SERVER}:{PSEUDO}/crash/{d.name}/vmcore"
    assert entry["PANIC"] == "Kernel panic - not syncing: sysrq triggered crash"
