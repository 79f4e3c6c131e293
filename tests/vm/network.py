"""The systemd cycle with a network target: the guest's NIC and network, its files.

The guest is on QEMU user-mode networking with `restrict=on` (no route out of
QEMU) and a `guestfwd` per server port: a TCP connection to SERVER:22 (ssh) or
SERVER:2049 (nfs) runs tests/vm/relay.py, which joins it to the test's own
server on 127.0.0.1 (tests/service/sshd.py, tests/vm/nfsd.py).
The guest has a static address from systemd-networkd, the system's own network
configuration, in both kernels.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SERVER = "10.0.2.100"
GUEST_ADDRESS = "10.0.2.15/24"
NIC_MODULES = ("virtio_net",)  # failover and net_failover come as its dependencies
RELAY = Path(__file__).resolve().parent / "relay.py"

NETWORK = f"""\
[Match]
Type=ether

[Network]
Address={GUEST_ADDRESS}
LinkLocalAddressing=no
IPv6AcceptRA=no
"""


def nic(forwards: dict[int, int]) -> tuple[str, ...]:
    """QEMU's options: the NIC, and each SERVER:guest_port relayed to 127.0.0.1:host_port."""
    fwd = ",".join(f"guestfwd=tcp:{SERVER}:{guest}-cmd:{sys.executable} {RELAY} {host}"
                   for guest, host in forwards.items())
    return ("-netdev", f"user,id=net0,restrict=on,{fwd}",
            "-device", "virtio-net-pci,netdev=net0")


class Guest(Protocol):
    """What the systemd cycle asks of a network target's guest."""

    @property
    def path(self) -> str: ...
    @property
    def modules(self) -> tuple[str, ...]: ...
    def nic(self) -> tuple[str, ...]: ...
    def config(self) -> str: ...
    def files(self) -> dict[str, tuple[bytes, int]]: ...


def ssh_files(key: Path, host_key: str) -> dict[str, tuple[bytes, int]]:
    """The guest's kdump key, its known_hosts and its network configuration."""
    return {
        "/root/.ssh/kdump_id_ed25519": (key.read_bytes(), 0o600),
        "/root/.ssh/kdump_id_ed25519.pub": (Path(f"{key}.pub").read_bytes(), 0o644),
        "/root/.ssh/known_hosts": (f"{SERVER} {host_key}\n".encode(), 0o644),
        "/etc/systemd/network/20-kdumpvm.network": (NETWORK.encode(), 0o644),
    }


@dataclass(frozen=True)
class SshGuest:
    port: int  # the test's sshd on 127.0.0.1
    key: Path  # the client's private key, installed as the guest's sshkey
    host_key: str  # the server's public host key line
    path: str  # the dump directory on the server
    user: str = "root"
    modules: tuple[str, ...] = NIC_MODULES

    def nic(self) -> tuple[str, ...]:
        return nic({22: self.port})

    def config(self) -> str:
        return f"ssh {self.user}@{SERVER}\nsshkey /root/.ssh/kdump_id_ed25519\n"

    def files(self) -> dict[str, tuple[bytes, int]]:
        """Guest path: (content, mode)."""
        return ssh_files(self.key, self.host_key)


@dataclass(frozen=True)
class NfsGuest:
    port: int  # the test's NFS server on 127.0.0.1
    export: str  # the server's pseudo path
    path: str = "/crash"  # under the export
    modules: tuple[str, ...] = (*NIC_MODULES, "nfsv4")

    def nic(self) -> tuple[str, ...]:
        return nic({2049: self.port})

    def config(self) -> str:
        return f"nfs {SERVER}:{self.export}\n"

    def files(self) -> dict[str, tuple[bytes, int]]:
        return {"/etc/systemd/network/20-kdumpvm.network": (NETWORK.encode(), 0o644)}
