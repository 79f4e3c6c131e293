"""A user-space NFS v4 server on 127.0.0.1 for the nfs target's VM cycle: Debian's
nfs-ganesha with its VFS backend, its own configuration, pid file and log in a
temporary directory, TCP only, NFS v4 only, an unprivileged port (the kernel of
the machine running the tests has no nfsd)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.localserver import free_port, tmpfs, wait_listening

GANESHA = "/usr/bin/ganesha.nfsd"
PSEUDO = "/dumps"


@dataclass
class Server:
    port: int
    export: Path  # the directory behind PSEUDO
    proc: subprocess.Popen[bytes]


@contextmanager
def nfsd(tmp: Path, size: str | None = None) -> Iterator[Server]:
    """The server; with `size`, its export is a tmpfs that small (a disk that fills)."""
    if not os.path.exists(GANESHA):
        pytest.skip("nfs-ganesha is not installed (setup.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("nfs-ganesha's VFS backend runs as root")
    tmp.mkdir(parents=True, exist_ok=True)
    export = tmp / "export"
    export.mkdir()
    if size is not None:
        tmpfs(export, size)
    port = free_port()
    config = tmp / "ganesha.conf"
    config.write_text(f"""\
NFS_CORE_PARAM {{
    Protocols = 4;
    NFS_Port = {port};
    Bind_addr = 127.0.0.1;
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSV4 {{ Graceless = true; }}
EXPORT {{
    Export_Id = 1;
    Path = {export};
    Pseudo = {PSEUDO};
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
""")
    proc = subprocess.Popen([GANESHA, "-F", "-f", str(config), "-L", str(tmp / "ganesha.log"),
                             "-p", str(tmp / "ganesha.pid"), "-N", "NIV_WARN"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, tmp / "ganesha.log", "nfs-ganesha")
        yield Server(port, export, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if size is not None:
            subprocess.run(["umount", str(export)], check=True)
