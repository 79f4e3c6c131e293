"""A real OpenSSH server on 127.0.0.1 for the ssh target's tests: its own host key,
configuration and authorized_keys in a temporary directory, an unprivileged port,
public-key logins only, for the user running the tests."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from kdumpctl_py.config.model import SshTarget
from tests.localserver import free_port, wait_listening

SSHD = "/usr/sbin/sshd"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    target: SshTarget
    key: str  # the client's private key; known_hosts beside it
    host_key: str  # the server's public host key line
    authorized_keys: Path  # sshd also reads home/.ssh/authorized_keys
    bin_dir: Path  # first on the sessions' PATH
    proc: subprocess.Popen[bytes]

    def install_kdumpctl(self) -> None:
        """kdumpctl-py on the sessions' PATH: this checkout's."""
        self.command("kdumpctl-py", f'PYTHONPATH={ROOT} exec {sys.executable} -m kdumpctl_py "$@"')

    def command(self, name: str, script: str) -> None:
        """`name` on the sessions' PATH, before the system's: this shell script."""
        path = self.bin_dir / name
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(0o755)

    def drop_when_streaming(self, dumps: Path, min_bytes: int = 1 << 20,
                            seconds: float = 60) -> threading.Thread:
        """A thread that kills the server's sessions (its children) once a
        `vmcore-incomplete` under `dumps` holds `min_bytes`: a connection dropped
        mid-stream. Join it after the save."""
        def drop() -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                partial = list(dumps.glob("*/vmcore-incomplete"))
                if partial and partial[0].stat().st_size >= min_bytes:
                    pid = self.proc.pid
                    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                        os.kill(int(child), signal.SIGKILL)
                    return
                time.sleep(0.01)

        thread = threading.Thread(target=drop, daemon=True)
        thread.start()
        return thread


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "kdumpctl-py test",
                    "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


@contextmanager
def sshd(tmp: Path, extra: str = "") -> Iterator[Server]:
    """The server; `extra`: more sshd_config lines (`ForceCommand /bin/false`: a login
    shell that runs no commands)."""
    if not os.path.exists(SSHD) or shutil.which("ssh") is None:
        pytest.skip("OpenSSH's server and client are not installed (setup.sh installs them)")
    if os.geteuid() != 0:
        pytest.skip("sshd with privilege separation runs as root")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its compiled-in privsep directory
    tmp.mkdir(parents=True, exist_ok=True)
    host_pub = _keygen(tmp / "host_key")
    client = tmp / "client"
    client.mkdir()
    client_pub = _keygen(client / "id")
    auth = tmp / "authorized_keys"
    auth.write_text(client_pub + "\n")
    port = free_port()
    (client / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    home = tmp / "home"  # the sessions' $HOME: what propagate installs goes here
    home.mkdir()
    config = tmp / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {tmp}/host_key
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {auth} {home}/.ssh/authorized_keys
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {getpass.getuser()}
StrictModes no
UsePAM no
SetEnv PATH={bin_dir}:/usr/bin:/bin HOME={home}
{extra}""")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                            stderr=open(tmp / "sshd.log", "wb"))  # noqa: SIM115
    try:
        wait_listening(port, proc, tmp / "sshd.log", "sshd")
        yield Server(SshTarget(getpass.getuser(), "127.0.0.1", port), str(client / "id"),
                     host_pub, auth, bin_dir, proc)
    finally:
        proc.terminate()
        proc.wait(10)
