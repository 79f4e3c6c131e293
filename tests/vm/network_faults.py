"""The network faults in one systemd crash cycle (tests/vm/test_network_faults.py).

A capture kernel boots once per crash, and a boot under TCG is the expensive
part, so one crash carries every fault: before kdumpctl-py-capture.service
(a drop-in orders it after this), a unit of the test runs `kdumpctl-py capture
--no-action` once per fault, each with its own kdump.conf (KDUMPCTL_CONFIG),
the same run_capture as the service, which prints the action it chose instead
of doing it; then it puts the refused key's configuration in place and the
service itself captures for real: that fault ends in the real failure_action
(reboot, and QEMU, run with -no-reboot, exits). The first kernel armed with the
working target, as a machine whose key is revoked later would.

The servers are the test's own on 127.0.0.1: one sshd, one nfs-ganesha whose
export is a small tmpfs, and two ports where nothing listens (a server that is
down). QEMU's user network ends the guest's TCP itself, so a stopped server
looks to the guest like a connection the server's side closes at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.vm.network import NIC_MODULES, SERVER, nic, ssh_files

SSH_DOWN_PORT = 2222  # guest-side ports forwarded to nothing
NFS_DOWN_PORT = 2050
REFUSED_KEY = "/root/.ssh/refused_id_ed25519"  # known_hosts beside it is the same file
COMMON = "final_action reboot\nfailure_action reboot\n"
# Filtering is not what these show, and -d 0 streams at once: a full disk or a drop
# strikes mid-stream within the first MiB.
RAW = "dump_level 0\ncompress none\n"
SCRIPT = "/usr/local/bin/kdumpctl-vm-faults"


@dataclass(frozen=True)
class Fault:
    name: str
    config: str  # kdump.conf lines of its own
    says: str  # a regular expression the journal's reason matches


@dataclass(frozen=True)
class FaultGuest:
    ssh_port: int  # the test's sshd on 127.0.0.1
    nfs_port: int  # nfs-ganesha, its export a small tmpfs
    dead_ports: tuple[int, int]  # on 127.0.0.1, nothing listening: ssh's and nfs's
    key: Path  # installed on the server
    refused_key: Path  # not installed there
    host_key: str
    server_dir: str  # the sshd's dumps: SERVER_DIR/{ok,full,drop,refused}
    export: str  # nfs-ganesha's pseudo path
    user: str = "root"
    modules: tuple[str, ...] = (*NIC_MODULES, "nfsv4")

    @property
    def path(self) -> str:  # the working target, which the first kernel checks
        return f"{self.server_dir}/ok"

    def nic(self) -> tuple[str, ...]:
        return nic({22: self.ssh_port, SSH_DOWN_PORT: self.dead_ports[0],
                    2049: self.nfs_port, NFS_DOWN_PORT: self.dead_ports[1]})

    def config(self) -> str:
        return f"ssh {self.user}@{SERVER}\n"

    def faults(self) -> tuple[Fault, ...]:
        """In the order they run; the last is the service's own, for real."""
        ssh = f"ssh {self.user}@{SERVER}"
        nfs = f"nfs {SERVER}:{self.export}"
        return (
            Fault("nfs-gone", f"{nfs} port={NFS_DOWN_PORT},retry=0\npath /crash\n",
                  r"mount -t nfs4 .* failed"),
            Fault("nfs-full", f"{nfs}\npath /crash\n{RAW}", "free but the dump needs"),
            # slirp closes or resets the guest's connection when the relay finds no server
            Fault("ssh-down", f"{ssh}:{SSH_DOWN_PORT}\npath {self.server_dir}/down\n",
                  rf"Connection (closed|reset) by {re.escape(SERVER)} port {SSH_DOWN_PORT}"),
            Fault("ssh-full", f"{ssh}\npath {self.server_dir}/full\n{RAW}",
                  "No space left on device"),
            Fault("ssh-drop", f"{ssh}\npath {self.server_dir}/drop\n{RAW}",
                  "not a whole dump"),
            Fault("ssh-refused", f"{ssh}\npath {self.server_dir}/refused\n"
                  f"sshkey {REFUSED_KEY}\n", "Permission denied"),
        )

    def script(self) -> str:
        *rehearsed, real = self.faults()
        lines = ["#!/bin/sh", "# The faults of tests/vm/network_faults.py, one capture each."]
        for f in rehearsed:
            lines += [f'echo "KDUMPCTL-VM: fault {f.name} begin"',
                      f"KDUMPCTL_CONFIG=/etc/kdumpctl-vm/{f.name}.conf "
                      "/usr/bin/kdumpctl-py capture --no-action",
                      f'echo "KDUMPCTL-VM: fault {f.name} end rc=$?"']
        lines += [f"cp /etc/kdumpctl-vm/{real.name}.conf /etc/kdumpctl-py/kdump.conf",
                  "journalctl --flush",  # from here on the journal is on the disk
                  f'echo "KDUMPCTL-VM: fault {real.name} by the service"', ""]
        return "\n".join(lines)

    def files(self) -> dict[str, tuple[bytes, int]]:
        out = ssh_files(self.key, self.host_key)
        out[REFUSED_KEY] = (self.refused_key.read_bytes(), 0o600)
        for f in self.faults():
            out[f"/etc/kdumpctl-vm/{f.name}.conf"] = ((COMMON + f.config).encode(), 0o644)
        out[SCRIPT] = (self.script().encode(), 0o755)
        out["/etc/systemd/system/kdumpctl-vm-faults.service"] = (UNIT.encode(), 0o644)
        out["/etc/systemd/system/kdumpctl-py-capture.service.d/faults.conf"] = (
            DROP_IN.encode(), 0o644)
        return out


UNIT = f"""\
[Unit]
Description=crash-cycle: the network faults, each a capture --no-action
ConditionPathExists=/proc/vmcore
DefaultDependencies=no
After=local-fs.target systemd-journald.socket network-online.target
Before=kdumpctl-py-capture.service

[Service]
Type=oneshot
ExecStart={SCRIPT}
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=900
"""

DROP_IN = """\
[Unit]
Wants=kdumpctl-vm-faults.service
After=kdumpctl-vm-faults.service
"""
