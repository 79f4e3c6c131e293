"""The ssh target against a real OpenSSH server on 127.0.0.1 (tests/service/sshd.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kdumpctl_py.config import Config
from kdumpctl_py.config.model import SshTarget
from kdumpctl_py.service import retention
from kdumpctl_py.service.capture import run_capture
from kdumpctl_py.service.ssh import (
    COMMAND_TIMEOUT_S,
    Remote,
    RemoteError,
    apply_retention,
    dumps_from_listing,
    finish_command,
    list_command,
    mkdir_command,
    ssh_argv,
    where,
    write_command,
)
from tests.builders import INFO, LINEAR, PAGE, UTS, FakeMachine, make_vmcore, unreadable_page
from tests.elfwriter import note, vmcore_bytes
from tests.localserver import tmpfs
from tests.service.sshd import Server, sshd

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> object:
    with sshd(tmp_path / "server") as s:
        yield s


def ssh_config(server: Server, path: Path, **kw: object) -> Config:
    return dataclasses.replace(Config(), target=server.target, sshkey=server.key,
                               path=str(path), **kw)  # type: ignore[arg-type]


def test_argv_never_prompts_and_bounds_every_wait() -> None:
    argv = ssh_argv(SshTarget("kdump", "::1", 2222), "/k/id", "true")
    assert argv[:4] == ["ssh", "-T", "-i", "/k/id"]
    for option in ("BatchMode=yes", "ConnectTimeout=20", "ServerAliveInterval=10",
                   "UserKnownHostsFile=/k/known_hosts", "IdentitiesOnly=yes"):
        assert option in argv
    assert argv[-5:] == ["-p", "2222", "--", "::1", "true"]


def test_a_file_that_does_not_fit_on_the_server_leaves_nothing_behind(tmp_path: Path) -> None:
    """write_command (save.json, vmcore-dmesg.txt, unreadable-pages.txt on the server) on a
    full disk, a real 64k tmpfs, run by sh as the server's shell runs it: it fails saying
    so, and neither the file nor its temporary file is left there."""
    d = tmp_path / "full"
    d.mkdir()
    tmpfs(d, "64k")
    try:
        (d / "filler").write_bytes(bytes(60 << 10))
        r = subprocess.run(["sh", "-c", write_command(str(d), "save.json")],
                           input=bytes(64 << 10), capture_output=True, check=False)
        left = sorted(p.name for p in d.iterdir())
    finally:
        subprocess.run(["umount", str(d)], check=True)
    assert r.returncode != 0 and b"No space left on device" in r.stderr
    assert left == ["filler"]


def test_two_machines_of_one_name_crashed_in_the_same_second_both_get_a_directory(
        tmp_path: Path) -> None:
    """mkdir_command as the server's shell runs it, while another machine of the same name
    (a `mkdir` on PATH that makes the directory first) takes the name between a look and
    the mkdir: this save takes NAME-1 rather than fail and lose its dump. A failure that is
    not a taken name (a read-only disk) still says why, and a hundred taken names say so."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/mkdir").write_text(
        '#!/bin/sh\nfor a; do :; done\n'  # the last argument: the directory
        f'if [ "$a" = h-1 ] && [ ! -e {tmp_path}/raced ]; then : > {tmp_path}/raced; '
        '/bin/mkdir -- "$a"; fi\n'
        'if [ "$a" = h-3 ]; then echo "mkdir: h-3: Read-only file system" >&2; exit 1; fi\n'
        'exec /bin/mkdir "$@"\n')
    (tmp_path / "bin/mkdir").chmod(0o755)

    def run(name: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["dash", "-c", mkdir_command(str(tmp_path / "dumps"), name)],
                              capture_output=True, env={"PATH": f"{tmp_path}/bin:/usr/bin:/bin"},
                              check=False)

    r = run("h-1")
    assert (r.returncode, r.stdout) == (0, b"h-1-1\n"), r.stderr
    assert (tmp_path / "raced").exists() and (tmp_path / "dumps/h-1-1").is_dir()
    for n in range(1, 100):
        (tmp_path / f"dumps/h-2-{n}").mkdir()
    (tmp_path / "dumps/h-2").symlink_to("nowhere")  # a taken name too, as a link
    r = run("h-2")
    assert r.returncode == 1 and r.stderr.decode().strip() == \
        f"{tmp_path}/dumps already holds 100 dumps named h-2"
    r = run("h-3")
    assert (r.returncode, r.stderr) == (1, b"mkdir: h-3: Read-only file system\n")
    assert not (tmp_path / "dumps/h-3-1").exists()


def test_listing_keeps_only_real_dump_directories() -> None:
    listing = b"\0".join([
        b"d h-2026-01-01-00:00:00", b"f h-2026-01-01-00:00:00/vmcore",
        b"d h-2026-01-02-00:00:00", b"f h-2026-01-02-00:00:00/vmcore-incomplete",
        b"l h-2026-01-03-00:00:00", b"d notadump", b"f notadump/vmcore",
        b"d h-2026-01-04-00:00:00-1", b"f h-2026-01-04-00:00:00-1/vmcore.flat", b""])
    assert dumps_from_listing(listing) == [
        retention.Dump("h-2026-01-01-00:00:00", True, ("2026-01-01-00:00:00", 0)),
        retention.Dump("h-2026-01-02-00:00:00", False, ("2026-01-02-00:00:00", 0)),
        retention.Dump("h-2026-01-04-00:00:00-1", True, ("2026-01-04-00:00:00", 1))]


@pytest.mark.parametrize("shell", ["dash", "busybox"])
def test_listing_needs_only_a_posix_shell_head_and_tr(tmp_path: Path, shell: str) -> None:
    """A dump server's tools may be BusyBox's (a NAS) or BSD's, without `find -printf`:
    the listing runs with nothing on PATH but head and tr, and names with spaces, tabs
    and a leading dash, a link to a dump and a record saying incomplete come out right."""
    import shutil

    names = ["h-2026-01-01-00:00:00", "-h x\ty-2026-01-02-00:00:00-1",
             "h-2026-01-03-00:00:00", "notadump"]
    for name, vmcore in zip(names, ["vmcore", "vmcore.flat", "vmcore", "vmcore"], strict=True):
        (tmp_path / "dumps" / name).mkdir(parents=True)
        (tmp_path / "dumps" / name / vmcore).write_bytes(b"")
    (tmp_path / "dumps" / names[2] / "save.json").write_text('{"complete": false}')
    (tmp_path / "dumps" / "h-2026-01-04-00:00:00").symlink_to(names[0])
    (tmp_path / "bin").mkdir()
    tool = shutil.which("busybox") if shell == "busybox" else None
    for name in ("head", "tr"):
        (tmp_path / "bin" / name).symlink_to(tool or shutil.which(name) or name)
    argv = [shutil.which(shell) or shell, *(["sh"] if tool else []), "-c",
            list_command(str(tmp_path / "dumps"))]
    listing = subprocess.run(argv, env={"PATH": str(tmp_path / "bin")},
                             capture_output=True, check=True).stdout
    assert dumps_from_listing(listing) == [
        retention.Dump(names[0], True, ("2026-01-01-00:00:00", 0)),
        retention.Dump(names[1], True, ("2026-01-02-00:00:00", 1)),
        retention.Dump(names[2], False, ("2026-01-03-00:00:00", 0))]


def test_saved_on_the_server_and_reassembled_there(tmp_path: Path, server: Server) -> None:
    server.install_kdumpctl()
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote" / "crash"
    local = run_capture(dataclasses.replace(Config(), path=str(tmp_path / "local"),
                                            compress="zlib", zlib_engine="zlib",
                                            dump_level=1),
                        FakeMachine(), str(vmcore))
    m = FakeMachine()
    out = run_capture(ssh_config(server, dumps, compress="zlib", zlib_engine="zlib",
                                 dump_level=1), m,
                      str(vmcore))
    assert out.saved and out.error is None and m.calls == [("act", "reboot")]
    (d,) = dumps.iterdir()
    assert out.dump == f"{server.target.user}@127.0.0.1:{d}"
    assert sorted(p.name for p in d.iterdir()) == ["save.json", "vmcore", "vmcore-dmesg.txt"]
    record = json.loads((d / "save.json").read_text())
    assert (record["how"], record["format"], record["vmcore"], record["complete"]) == \
        ("at -d 1 over ssh", "kdump", "vmcore", True)
    assert out.record is not None and out.record.level_written == 1
    assert (d / "vmcore").read_bytes() == (Path(local.dump or "") / "vmcore").read_bytes()
    assert (d / "vmcore-dmesg.txt").read_bytes() == \
        (Path(local.dump or "") / "vmcore-dmesg.txt").read_bytes()


def test_flat_file_stays_without_kdumpctl_on_the_server(tmp_path: Path,
                                                        server: Server) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    out = run_capture(ssh_config(server, dumps, keep=1), FakeMachine(), str(vmcore))
    again = run_capture(ssh_config(server, dumps, keep=1), FakeMachine(), str(vmcore))
    assert out.saved and again.saved and again.retention is not None
    (d,) = dumps.iterdir()  # keep 1: the older complete one went
    assert again.dump and again.dump.endswith(d.name) and again.retention.deleted
    assert sorted(p.name for p in d.iterdir()) == ["save.json", "vmcore-dmesg.txt",
                                                   "vmcore.flat"]
    assert json.loads((d / "save.json").read_text())["format"] == "flat"
    rebuilt = tmp_path / "rebuilt"
    subprocess.run([sys.executable, "-m", "kdumpctl_py", "reassemble", str(d / "vmcore.flat"),
                    str(rebuilt)], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert rebuilt.read_bytes()[:8] == b"KDUMP   "


def test_retention_never_deletes_incomplete_dumps(tmp_path: Path, server: Server) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    broken = dumps / "h-2000-01-01-00:00:00"
    broken.mkdir(parents=True)
    (broken / "vmcore-incomplete").write_bytes(b"x")
    for _ in range(2):
        out = run_capture(ssh_config(server, dumps, keep=1), FakeMachine(), str(vmcore))
    assert out.retention is not None and out.retention.incomplete == [broken.name]
    assert broken.exists() and len(list(dumps.iterdir())) == 2


def test_retention_over_ssh_reads_each_save_json_in_the_one_listing(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `vmcore` whose save.json says it is not complete (a save cut short after the
    rename) or not saved (a fallback's record) is incomplete on the server as on a local
    disk: keep 1 keeps the only complete dump, older than both, and deletes nothing. The
    records come with the listing, in one ssh call however many dumps there are."""
    dumps = tmp_path / "remote"
    for day, record in (("01", None), ("02", '{"complete": false}'),
                        ("03", '{"saved": false}')):
        d = dumps / f"h-2000-01-{day}-00:00:00"
        d.mkdir(parents=True)
        (d / "vmcore").write_bytes(b"x")
        if record:
            (d / "save.json").write_text(record)
    calls: list[str] = []
    run = Remote.run

    def counted(self: Remote, command: str, data: bytes = b"",
                timeout: float = COMMAND_TIMEOUT_S) -> bytes:
        calls.append(command)
        return run(self, command, data, timeout)

    monkeypatch.setattr(Remote, "run", counted)
    r = apply_retention(Remote(server.target, server.key), str(dumps), 1)
    assert (r.deleted, r.kept) == ([], ["h-2000-01-01-00:00:00"])
    assert r.incomplete == ["h-2000-01-02-00:00:00", "h-2000-01-03-00:00:00"]
    assert len(calls) == 1 and len(list(dumps.iterdir())) == 3


@pytest.mark.parametrize("fault,says", [
    ("down", "Connection refused"),
    ("key", "Permission denied"),
    ("full", "No space left on device"),
])
def test_faults_end_in_the_failure_action(tmp_path: Path, server: Server, fault: str,
                                          says: str) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    if fault == "down":
        server.proc.terminate()
        server.proc.wait(10)
    elif fault == "key":
        server.authorized_keys.write_text("")
    else:  # a small tmpfs: the log fits, the dump does not
        dumps.mkdir()
        tmpfs(dumps, "48k")
    try:
        m = FakeMachine()
        out = run_capture(ssh_config(server, dumps, failure_action="poweroff"), m,
                          str(vmcore), route_wait=2)
        left = [p.name for d in dumps.glob("*") for p in d.iterdir()]
    finally:
        if fault == "full":
            subprocess.run(["umount", str(dumps)], check=True)
    assert not out.saved and out.error and says in out.error, out.error
    assert f"{server.target.host}::" not in out.error  # the server named as user@host
    assert m.calls[-1] == ("act", "poweroff")
    assert not {"vmcore", "vmcore.flat"} & set(left)  # nothing that looks complete


@pytest.mark.parametrize("fault,says", [
    ("missing", "cannot be read (No such file or directory); kdumpctl-py propagate makes one"),
    ("open", "is open to others (mode 0644), so ssh ignores it: chmod 600 "),
    ("passphrase", "has a passphrase, which nobody can type in the capture kernel: remove "
     "it with ssh-keygen -p -N '' -f "),
])
def test_a_key_ssh_cannot_use_is_named_not_blamed_on_the_server(
        tmp_path: Path, server: Server, fault: str, says: str) -> None:
    """A key ssh skips (missing, open to others, with a passphrase) reads in ssh's own
    words as the server refusing it: the error says which it is and what to do, in status
    and start's check as in the capture kernel's journal."""
    keys = tmp_path / "keys"
    keys.mkdir()
    key = keys / "id"
    (keys / "known_hosts").write_text(Path(server.key).with_name("known_hosts").read_text())
    if fault != "missing":
        key.write_bytes(Path(server.key).read_bytes())
        key.chmod(0o644 if fault == "open" else 0o600)
    if fault == "passphrase":
        subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "secret", "-f", str(key)],
                       check=True, capture_output=True)
    with pytest.raises(RemoteError) as e:
        Remote(server.target, str(key)).run("true")
    assert "Permission denied (publickey): the key " in str(e.value), e.value
    assert says in str(e.value) and "\n" not in str(e.value)


def test_a_shell_that_runs_no_commands_is_named(tmp_path: Path) -> None:
    """A user whose login shell runs nothing (/bin/false, here sshd's ForceCommand) fails
    every command with no word: the error says what to look at rather than `exit status 1`,
    before a dump in the capture kernel as in status and start's check."""
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.service.check import check_target

    with sshd(tmp_path / "server", "ForceCommand /bin/false\n") as server:
        with pytest.raises(RemoteError) as e:
            Remote(server.target, server.key).run("true")
        check = check_target(ssh_config(server, tmp_path / "dumps"), SystemView())
    says = (f"the server exited 1 saying nothing: is the login shell of {server.target.user} "
            "there a POSIX shell (not /bin/false or nologin)?")
    assert str(e.value) == f"ssh {where(server.target)}: {says}"
    assert check is not None and check.ok is False and check.detail.endswith(says)


def test_a_stream_the_server_holds_only_part_of_says_so(tmp_path: Path) -> None:
    """finish_command as the server's shell runs it, on a vmcore-incomplete shorter than
    what was sent: it stays -incomplete and the error says how much is there."""
    (tmp_path / "vmcore-incomplete").write_bytes(b"12345")
    r = subprocess.run(["dash", "-c", finish_command(str(tmp_path), 12)],
                       capture_output=True, check=False)
    assert (r.returncode, r.stdout) == (1, b"")
    assert r.stderr == b"vmcore-incomplete holds 5 of the 12 bytes sent\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vmcore-incomplete"]


def test_dump_to_rootfs_saves_locally_when_the_server_fails(tmp_path: Path,
                                                            server: Server) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    server.authorized_keys.write_text("")
    cfg = ssh_config(server, tmp_path / "local", failure_action="dump_to_rootfs")
    out = run_capture(cfg, FakeMachine(), str(vmcore))
    assert out.saved and out.dump and (Path(out.dump) / "vmcore").exists()


def big_vmcore(tmp_path: Path, mib: int) -> Path:
    """A vmcore with `mib` MiB of incompressible memory: a stream that lasts a while."""
    low = bytearray(8 * PAGE)
    low[:len(UTS)] = UTS
    high = np.random.default_rng(0).integers(0, 256, mib << 20, dtype=np.uint8).tobytes()
    segs = [(LINEAR, 0, bytes(low), 8 * PAGE), (LINEAR + 0x100000, 0x100000, high, len(high))]
    path = tmp_path / "vmcore"
    path.write_bytes(vmcore_bytes(segs, note(b"CORE", 1, bytes(336)) + note(b"VMCOREINFO", 0,
                                                                            INFO)))
    return path


def test_a_dropped_connection_leaves_no_complete_looking_dump(tmp_path: Path,
                                                              server: Server) -> None:
    vmcore = big_vmcore(tmp_path, 192)
    dumps = tmp_path / "remote"
    killer = server.drop_when_streaming(dumps)
    m = FakeMachine()
    out = run_capture(ssh_config(server, dumps, compress="none", dump_level=0,
                                 failure_action="halt"), m, str(vmcore), route_wait=2)
    killer.join()
    assert not out.saved and out.error and "vmcore-incomplete there is not a whole dump" in \
        out.error, out.error
    assert m.calls[-1] == ("act", "halt")
    (d,) = dumps.iterdir()
    names = {p.name for p in d.iterdir()}
    assert "vmcore-incomplete" in names and not {"vmcore", "vmcore.flat"} & names


@contextlib.contextmanager
def ssh_killed_after(seconds: float) -> Iterator[None]:
    """This process's ssh children are killed if the block runs `seconds`: a stream that
    stalls for ever then fails the test instead of hanging it."""

    def kill() -> None:
        me = os.getpid()
        for child in Path(f"/proc/{me}/task/{me}/children").read_text().split():
            if Path(f"/proc/{child}/comm").read_text().strip() == "ssh":
                os.kill(int(child), signal.SIGKILL)

    timer = threading.Timer(seconds, kill)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def test_a_chatty_server_does_not_stall_the_stream(tmp_path: Path, server: Server) -> None:
    """The remote session writes 4 MiB to stderr before it reads the dump (a shell's
    startup file, a wrapper of cat): more than ssh's channel window and a pipe hold,
    so ssh's stderr must be read while the dump streams, or ssh stops reading the
    stream, the write blocks, and the capture kernel hangs with no dump for ever (the
    connection stays alive; dropped, ssh still blocks writing what it holds for stderr).
    Here ssh is killed after 60 s of that, so the test fails instead of hanging."""
    server.command("cat", 'yes chatty warning | head -c 4194304 >&2\nexec /bin/cat "$@"')
    vmcore = big_vmcore(tmp_path, 16)
    dumps = tmp_path / "remote"
    with ssh_killed_after(60):
        out = run_capture(ssh_config(server, dumps, compress="none", dump_level=0),
                          FakeMachine(), str(vmcore), route_wait=2)
    assert out.saved and out.record is not None and out.record.complete, out.error
    (d,) = dumps.iterdir()
    assert (d / "vmcore.flat").stat().st_size == out.record.bytes


def test_a_server_that_stops_reading_ends_the_chain_in_time(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session on the server stops reading the dump (a hung disk there; here a `cat`
    that sleeps instead) while the connection stays alive, which ServerAlive cannot
    see: a write to the stream blocked STALL_S ends the chain with the failure action,
    rather than leaving the capture kernel waiting for ever. On main the save blocks:
    ssh is killed after 60 s here, so the test fails instead of hanging."""
    from kdumpctl_py.service import ssh

    monkeypatch.setattr(ssh, "STALL_S", 3, raising=False)
    asleep = f"sleep 3600.{os.getpid()}"  # this run's own, for the cleanup to find
    server.command("cat", 'case "$(readlink /proc/$$/fd/1)" in\n'
                   f'  *vmcore-incomplete) exec {asleep};;\nesac\nexec /bin/cat "$@"')
    vmcore = big_vmcore(tmp_path, 16)
    dumps = tmp_path / "remote"
    m = FakeMachine()
    try:
        with ssh_killed_after(60):
            out = run_capture(ssh_config(server, dumps, compress="none", dump_level=0,
                                         failure_action="poweroff"), m, str(vmcore),
                              route_wait=2)
    finally:
        subprocess.run(["pkill", "-f", asleep], check=False)
    assert not out.saved and out.error and "took no data for 3 s" in out.error, out.error
    assert m.calls[-1] == ("act", "poweroff")


def test_only_the_end_of_ssh_stderr_is_kept() -> None:
    """What ssh says while the dump streams is read as it comes and kept bounded: its
    last line, which the error quotes, is in the STDERR_KEPT bytes kept."""
    from kdumpctl_py.service.ssh import STDERR_KEPT, StderrTail, _last_line

    r, w = os.pipe()
    with os.fdopen(r, "rb") as pipe:
        tail = StderrTail(pipe)
        with os.fdopen(w, "wb") as f:
            f.write(b"chatty warning\n" * 100_000 + b"No space left on device\n")
        kept = tail.text()
    assert len(kept) == STDERR_KEPT and _last_line(kept, 1) == "No space left on device"


@pytest.mark.parametrize("breaks,how,fmt", [
    (lambda o: o.dump_level == 31, "at -d 1 without struct pages over ssh", "kdump"),
    (lambda o: o.format == "kdump", "as a plain copy over ssh", "elf"),
])
def test_filtering_that_fails_falls_back_as_on_a_local_disk(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch,
        breaks: object, how: str, fmt: str) -> None:
    from kdumpctl_py.capture import save as save_mod

    real = save_mod.save_vmcore

    def flaky(vmcore: str, target: str, options: save_mod.SaveOptions,
              stream: object = None) -> save_mod.SaveResult:
        if breaks(options):  # type: ignore[operator]
            raise ValueError("the page filter broke")
        return real(vmcore, target, options, stream)  # type: ignore[arg-type]

    monkeypatch.setattr(save_mod, "save_vmcore", flaky)
    server.install_kdumpctl()
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    out = run_capture(ssh_config(server, dumps), FakeMachine(), str(vmcore))
    assert out.saved and out.record is not None, out.error
    (d,) = dumps.iterdir()  # the failed attempts' directories are gone
    record = json.loads((d / "save.json").read_text())
    assert record["how"] == how and record["format"] == fmt and record["vmcore"] == "vmcore"
    assert record["failed"] and all(a["removed"] and a["error"] ==
                                    "ValueError: the page filter broke"
                                    for a in record["failed"])
    assert (d / "vmcore").read_bytes()[:4] == (b"\x7fELF" if fmt == "elf" else b"KDUM")


def test_every_attempt_failing_leaves_a_record_on_the_server(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """No attempt wrote a dump, ssh still works: save.json (saved false) on the server says
    why, beside what the last attempt left, and the failure names it."""
    from kdumpctl_py.capture import save as save_mod
    from kdumpctl_py.capture.record import summary

    def broken(*args: object, **kw: object) -> None:
        raise ValueError("nothing saves today")

    monkeypatch.setattr(save_mod, "save_vmcore", broken)
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    out = run_capture(ssh_config(server, dumps), FakeMachine(), str(vmcore))
    assert not out.saved and out.error
    records = list(dumps.glob("*/save.json"))
    assert len(records) == 1 and f":{records[0]})" in out.error
    record = json.loads(records[0].read_text())
    assert record["saved"] is False and len(record["failed"]) == 4
    assert summary(record).startswith(
        "no dump saved: at -d 31 failed: ValueError: nothing saves today; ")


def test_firmware_memory_left_out_over_ssh_is_a_complete_dump(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of firmware memory /proc/vmcore cannot give back (riscv64's OpenSBI) leaves
    the streamed dump complete, and save.json says so, as on a local disk."""
    from kdumpctl_py.capture import vmcore as vmcore_mod

    vmcore, _ = make_vmcore(tmp_path)
    unreadable_page(monkeypatch, vmcore)
    monkeypatch.setattr(vmcore_mod, "firmware_memory_of", lambda view: ((0x105 * PAGE, PAGE),))
    dumps = tmp_path / "remote"
    out = run_capture(ssh_config(server, dumps, dump_level=0), FakeMachine(), str(vmcore))
    assert out.saved and out.record is not None and out.record.complete
    (d,) = dumps.iterdir()
    assert json.loads((d / "save.json").read_text())["complete"] is True
    assert not (d / "unreadable-pages.txt").exists()


@pytest.mark.parametrize("reassembled", [True, False], ids=["kdumpctl-there", "flat"])
def test_a_page_lost_over_ssh_leaves_an_incomplete_dump(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch,
        reassembled: bool) -> None:
    """A page /proc/vmcore cannot give back outside firmware memory: on the server, as on
    a local disk, the dump keeps its -incomplete name beside unreadable-pages.txt, so
    retention never deletes it as a complete one."""
    from kdumpctl_py.capture.kdumpfile import read_kdump

    if reassembled:
        server.install_kdumpctl()
    vmcore, _ = make_vmcore(tmp_path)
    unreadable_page(monkeypatch, vmcore)
    dumps = tmp_path / "remote"
    out = run_capture(ssh_config(server, dumps, dump_level=0), FakeMachine(), str(vmcore))
    assert out.saved and out.record is not None and not out.record.complete
    (d,) = dumps.iterdir()
    name = "vmcore-incomplete" if reassembled else "vmcore.flat-incomplete"
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["save.json", "unreadable-pages.txt", "vmcore-dmesg.txt", name])
    assert (d / "unreadable-pages.txt").read_text() == "0x105\n"
    assert json.loads((d / "save.json").read_text())["vmcore"] == name
    if reassembled:
        assert read_kdump(str(d / name)).incomplete
    assert dumps_from_listing(subprocess.run(
        ["sh", "-c", list_command(str(dumps))], capture_output=True, check=True).stdout) == [
        retention.Dump(d.name, False, (d.name.split("-", 1)[1], 0))]


def test_sigterm_while_streaming_ends_the_chain(tmp_path: Path, server: Server,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (systemd stopping the capture service) ends the save over ssh as it ends
    one on a local disk: no further attempt with less filtering, the failure said."""
    from kdumpctl_py.capture.sink import FlatSink

    real = FlatSink.write_at
    sent: list[int] = []

    def write_at(self: FlatSink, offset: int, data: bytes | memoryview) -> None:
        if not sent:
            sent.append(offset)
            os.kill(os.getpid(), signal.SIGTERM)
        real(self, offset, data)

    monkeypatch.setattr(FlatSink, "write_at", write_at)
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    out = run_capture(ssh_config(server, dumps), FakeMachine(), str(vmcore))
    (d,) = dumps.iterdir()  # one attempt, none after it
    assert not {"vmcore", "vmcore.flat"} & {p.name for p in d.iterdir()}
    # where, as on a local disk: the server's directory, and save.json saying why there
    assert not out.saved and out.error == (
        f"interrupted; {where(server.target, str(d))}/vmcore-incomplete holds an "
        "incomplete dump"), out.error
    record = json.loads((d / "save.json").read_text())
    assert record["saved"] is False and record["failed"][0]["error"] == out.error


def test_sigterm_when_the_server_stops_answering_is_still_reported(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """After SIGTERM the one ssh call left, writing save.json, waited COMMAND_TIMEOUT_S
    (120 s) on a server that no longer answers: longer than systemd's stop timeout (90 s),
    which SIGKILLs the service before it reports. That call gets a short timeout, and the
    interruption is still said, with the record that could not be written."""
    import time

    from kdumpctl_py.capture.sink import FlatSink
    from kdumpctl_py.service import ssh

    monkeypatch.setattr(ssh, "AFTER_INTERRUPT_TIMEOUT_S", 2, raising=False)
    server.command("cat", 'case "$(readlink /proc/$$/fd/1)" in\n'
                   '  *save.json.tmp) sleep 15; exit 1;;\nesac\nexec /bin/cat "$@"')
    real = FlatSink.write_at

    def write_at(self: FlatSink, offset: int, data: bytes | memoryview) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        real(self, offset, data)

    monkeypatch.setattr(FlatSink, "write_at", write_at)
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    started = time.monotonic()
    out = run_capture(ssh_config(server, dumps), FakeMachine(), str(vmcore))
    took = time.monotonic() - started
    (d,) = dumps.iterdir()
    assert not out.saved and out.error == (
        f"interrupted; {where(server.target, str(d))}/vmcore-incomplete holds an "
        "incomplete dump; save.json could not be written there"), out.error
    assert took < 10, took
    assert not (d / "save.json").exists()


def test_a_second_sigterm_while_the_interruption_is_recorded_is_absorbed(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM again (an impatient admin) while save.json is written after the first: the
    program's default action would kill it there, without the record or the line that
    says where the incomplete dump is. Here a recorder stands in for that default."""
    from kdumpctl_py.capture.sink import FlatSink
    from kdumpctl_py.service.ssh import Remote

    killed: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: killed.append(signum))
    real_write, real_run = FlatSink.write_at, Remote.run

    def write_at(self: FlatSink, offset: int, data: bytes | memoryview) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        real_write(self, offset, data)

    def run(self: Remote, command: str, data: bytes = b"", timeout: float = 120) -> bytes:
        if "save.json" in command:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_run(self, command, data, timeout)

    monkeypatch.setattr(FlatSink, "write_at", write_at)
    monkeypatch.setattr(Remote, "run", run)
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    try:
        out = run_capture(ssh_config(server, dumps), FakeMachine(), str(vmcore))
    finally:
        signal.signal(signal.SIGTERM, previous)
    (d,) = dumps.iterdir()
    assert not killed
    assert not out.saved and out.error == (
        f"interrupted; {where(server.target, str(d))}/vmcore-incomplete holds an "
        "incomplete dump"), out.error
    assert json.loads((d / "save.json").read_text())["failed"][0]["error"] == out.error


def sigterm(unit: bool) -> None:
    """SIGTERM to this process, and with `unit` to its ssh children first, as systemd's
    KillMode=control-group sends it to every process of the capture service."""
    me = os.getpid()
    for child in Path(f"/proc/{me}/task/{me}/children").read_text().split() if unit else ():
        if Path(f"/proc/{child}/comm").read_text().strip() == "ssh":
            os.kill(int(child), signal.SIGTERM)
    os.kill(me, signal.SIGTERM)


@pytest.mark.parametrize("unit", [False, True], ids=["this-process", "the-unit"])
def test_sigterm_while_the_server_stalls_is_an_interruption(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch, unit: bool) -> None:
    """SIGTERM while a write to a server that stopped reading is blocked ends the chain at
    once and is said as an interruption, as one while streaming normally is: not a broken
    stream (systemd sends it to ssh too, which dies of it), and not after waiting STALL_S
    for the stall to be noticed (ssh, still alive, takes nothing more)."""
    import time

    from kdumpctl_py.service import ssh

    monkeypatch.setattr(ssh, "STALL_S", 20, raising=False)
    server.command("cat", 'case "$(readlink /proc/$$/fd/1)" in\n'
                   '  *vmcore-incomplete) exec sleep 40;;\nesac\nexec /bin/cat "$@"')
    vmcore = big_vmcore(tmp_path, 16)
    m = FakeMachine()
    term = threading.Timer(3, sigterm, (unit,))
    with ssh_killed_after(60):
        started = time.monotonic()
        term.start()
        out = run_capture(ssh_config(server, tmp_path / "remote", compress="none",
                                     dump_level=0, failure_action="poweroff"), m,
                          str(vmcore), route_wait=2)
        took = time.monotonic() - started
    assert not out.saved and out.error and out.error.startswith("interrupted"), out.error
    assert took < 15, took
    assert m.calls[-1] == ("act", "poweroff")


def test_a_read_error_in_filtering_falls_back_over_ssh(
        tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError from reading the vmcore (EIO while the filter reads struct pages) is the
    attempt's failure, not the stream's: the chain goes on with less filtering, as on a
    local disk, rather than ending as if ssh or the server had failed."""
    import errno

    from kdumpctl_py.capture import save as save_mod
    from kdumpctl_py.capture.filter import dumpable_windows as real

    def windows(v: object, level: int, stats: object, struct_pages: bool,
                *args: object) -> object:
        if struct_pages:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(v, level, stats, struct_pages, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(save_mod, "dumpable_windows", windows)
    vmcore, _ = make_vmcore(tmp_path)
    dumps = tmp_path / "remote"
    out = run_capture(ssh_config(server, dumps), FakeMachine(), str(vmcore))
    assert out.saved and out.record is not None, out.error
    assert out.record.how == "at -d 1 without struct pages over ssh"
