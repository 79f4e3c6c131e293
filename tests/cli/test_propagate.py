"""propagate against a real sshd on 127.0.0.1: the login that installs the key is
the user's own (here an ssh-agent holding another key, as a password would be)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.service.sshd import sshd


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Path]:
    """An ssh-agent holding an 'admin' key: the user's usual way in."""
    key = tmp_path / "admin"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        subprocess.run(["ssh-add", "-q", str(key)], check=True,
                       env={**os.environ, "SSH_AUTH_SOCK": str(sock)})
        yield key
    finally:
        proc.terminate()
        proc.wait(10)


def test_makes_the_key_installs_it_once_and_says_so(
        tmp_path: Path, agent: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with sshd(tmp_path / "server") as server:
        server.authorized_keys.write_text(Path(f"{agent}.pub").read_text())  # admin only
        key = tmp_path / "keys" / "kdump_id_ed25519"
        conf = tmp_path / "kdump.conf"
        conf.write_text(f"ssh {server.target.spec}\nsshkey {key}\npath {tmp_path / 'dumps'}\n")
        monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
        monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
        assert main(["propagate"]) == 0
        out = capsys.readouterr().out
        assert f"{key}: made a new ed25519 key without a passphrase" in out
        assert "the key works: ssh target" in out and "writable" in out
        installed = (tmp_path / "server/home/.ssh/authorized_keys").read_text()
        assert installed == Path(f"{key}.pub").read_text()
        # The server's host key, recorded beside the key (hashed, as Debian's ssh does).
        assert server.host_key.split()[1] in (key.parent / "known_hosts").read_text()
        assert main(["propagate"]) == 0  # again: nothing to do
        out = capsys.readouterr().out
        assert "the key exists" in out and "the key already works" in out
        assert (tmp_path / "server/home/.ssh/authorized_keys").read_text() == installed


def test_needs_an_ssh_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "kdump.conf"
    conf.write_text("path /var/crash\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    assert main(["propagate"]) == 2
    assert "has no ssh target" in capsys.readouterr().err




def test_a_key_ssh_would_ignore_is_not_installed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A key open to others, or with a passphrase, fails the check however often it is
    installed: propagate says what to do with it instead of asking for the server's
    password and installing it."""
    with sshd(tmp_path / "server") as server:
        key = tmp_path / "keys" / "kdump_id_ed25519"
        key.parent.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        key.chmod(0o640)
        conf = tmp_path / "kdump.conf"
        conf.write_text(f"ssh {server.target.spec}\nsshkey {key}\npath {tmp_path / 'dumps'}\n")
        monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
        assert main(["propagate"]) == 1
        err = capsys.readouterr().err
        assert err == (f"kdumpctl-py: error: the key {key} is open to others (mode 0640), "
                       f"so ssh ignores it: chmod 600 {key}\n")
        key.chmod(0o600)
        subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "secret", "-f", str(key)],
                       check=True, capture_output=True)
        assert main(["propagate"]) == 1
        assert "has a passphrase, which nobody can type" in capsys.readouterr().err
        assert not (tmp_path / "server/home/.ssh").exists()  # nothing installed
