from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.config import Config, Target, parse_text
from kdumpctl_py.service.actions import action_argv
from kdumpctl_py.service.capture import run_capture
from kdumpctl_py.service.testid import status_name
from tests.builders import FakeMachine, make_vmcore


def config(tmp_path: Path, **kw: object) -> Config:
    return dataclasses.replace(Config(), path=str(tmp_path / "crash"), **kw)  # type: ignore[arg-type]


def test_saves_runs_hooks_writes_test_result_and_acts(tmp_path: Path) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    cfg = config(tmp_path, kdump_pre=("/pre",), kdump_post=("/post", "x"), final_action="halt",
                 compress="zlib", dump_level=1)
    m = FakeMachine()
    out = run_capture(cfg, m, str(vmcore), "root=/dev/vda kdumpctl_py.test_id=T1")
    assert out.saved and out.dump and out.action == "halt"
    assert m.calls == [("run", "/pre"), ("run", "/post", "x", "0"), ("act", "halt")]
    assert (Path(out.dump) / "vmcore").exists()
    result = Path(out.dump) / status_name("T1")
    assert result.read_text() == f"saved {out.dump}\n"


def test_failing_pre_skips_the_dump(tmp_path: Path) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    m = FakeMachine(rc=3)
    out = run_capture(config(tmp_path, kdump_pre=("/pre",), kdump_post=("/post",)), m,
                      str(vmcore))
    assert out.skipped and not out.saved and not (tmp_path / "crash").exists()
    assert m.calls == [("run", "/pre"), ("act", "reboot")]


def test_failure_runs_post_with_1_and_the_failure_action(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kdumpctl_py.capture.record import read_record, summary

    m = FakeMachine()
    out = run_capture(config(tmp_path, kdump_post=("/post",), failure_action="shell"), m,
                      str(tmp_path / "no-vmcore"), "kdumpctl_py.test_id=T2")
    assert not out.saved and out.error and out.action == "shell"
    assert m.calls == [("run", "/post", "1"), ("act", "shell")]
    assert (tmp_path / "crash" / status_name("T2")).read_text().startswith("failed: ")
    # the target keeps a record of why, and the journal names it
    (d,) = [p for p in (tmp_path / "crash").iterdir() if p.is_dir()]
    rec = read_record(str(d)) or {}
    assert summary(rec).startswith("no dump saved: at -d 31 failed: cannot open ")
    err = capsys.readouterr().err
    assert "saving the dump failed: no dump could be written: " in err
    assert f"(recorded in {d / 'save.json'})" in out.error


def test_target_is_mounted_privately_and_retention_runs(tmp_path: Path) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    mp = tmp_path / "mnt"
    old = mp / "dumps" / "h-2000-01-01-00:00:00"
    old.mkdir(parents=True)
    (old / "vmcore").write_bytes(b"old")
    cfg = dataclasses.replace(Config(), path="/dumps", target=Target("ext4", "LABEL=crash"),
                              keep=1, dump_level=1)
    m = FakeMachine()
    out = run_capture(cfg, m, str(vmcore), mountpoint=str(mp))
    assert out.saved and out.dump and out.dump.startswith(f"{mp}/dumps/")
    assert out.retention and out.retention.deleted == ["h-2000-01-01-00:00:00"]
    assert m.calls == [("wait", "/dev/disk/by-label/crash"),
                       ("mount", "ext4", "LABEL=crash", str(mp)), ("umount", str(mp)),
                       ("act", "reboot")]


def test_retention_never_deletes_the_dump_it_follows(tmp_path: Path) -> None:
    """Found by review: the dump just saved, named older than the others (the crashed
    kernel's clock was wrong), was the one keep 1 deleted."""
    vmcore, _ = make_vmcore(tmp_path)
    later = tmp_path / "crash" / "h-2099-01-01-00:00:00"
    later.mkdir(parents=True)
    (later / "vmcore").write_bytes(b"from a clock ahead")
    out = run_capture(config(tmp_path, keep=1, dump_level=1), FakeMachine(), str(vmcore))
    assert out.saved and out.dump and (Path(out.dump) / "vmcore").exists()
    assert out.retention and out.retention.deleted == [later.name] and not later.exists()


def test_a_target_that_never_appears_leaves_the_result_on_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: it went to the configured path on the root file system, under the
    target's mount point in the first kernel, where status never looks."""
    from kdumpctl_py.service import capture

    vmcore, _ = make_vmcore(tmp_path)
    monkeypatch.setattr(capture, "NETWORK_RESULTS", str(tmp_path / "state"))
    cfg = dataclasses.replace(config(tmp_path), target=Target("ext4", "LABEL=crash"))
    out = run_capture(cfg, FakeMachine(device=False), str(vmcore), "kdumpctl_py.test_id=T3")
    assert not out.saved and out.test_status
    assert (tmp_path / "state" / status_name("T3")).read_text().startswith(
        "failed: the target LABEL=crash did not appear")
    assert not (tmp_path / "crash").exists()


def test_dump_to_rootfs_saves_again_without_the_target(tmp_path: Path) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    cfg = dataclasses.replace(config(tmp_path, dump_level=1), target=Target("xfs", "UUID=x"),
                              failure_action="dump_to_rootfs", final_action="poweroff")
    m = FakeMachine(device=False)
    out = run_capture(cfg, m, str(vmcore))
    assert out.saved and out.dump and out.dump.startswith(str(tmp_path / "crash"))
    assert out.action == "poweroff" and ("act", "poweroff") in m.calls


def test_a_dump_rescued_to_the_root_is_a_dump_saved_for_kdump_post_and_the_test(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: kdump_post was told 1 (no dump) and the test's result said failed
    before dump_to_rootfs saved the dump after all."""
    from kdumpctl_py.service import capture

    vmcore, _ = make_vmcore(tmp_path)
    monkeypatch.setattr(capture, "NETWORK_RESULTS", str(tmp_path / "state"))
    cfg = dataclasses.replace(config(tmp_path, dump_level=1, kdump_post=("/post",), keep=1),
                              target=Target("xfs", "UUID=x"), failure_action="dump_to_rootfs")
    m = FakeMachine(device=False)
    out = run_capture(cfg, m, str(vmcore), "kdumpctl_py.test_id=T4")
    assert out.saved and out.dump and out.dump.startswith(str(tmp_path / "crash"))
    assert ("run", "/post", "0") in m.calls and out.retention is None
    assert (tmp_path / "state" / status_name("T4")).read_text() == f"saved {out.dump}\n"
    # and its save.json says why it is not on the target (found by review: it did not)
    from kdumpctl_py.capture.record import read_record, summary

    assert summary(read_record(out.dump) or {}) == (
        "saved at -d 1 after saving on the dump target failed: the target UUID=x did not "
        "appear (/dev/disk/by-uuid/x)")


def test_actions() -> None:
    assert action_argv("reboot", True) == ["systemctl", "reboot", "-f"]
    assert action_argv("poweroff", False) == ["poweroff", "-f"]
    assert action_argv("shell", True)[-1] == "emergency.target"


def test_a_rehearsal_outside_the_capture_kernel_needs_its_own_target(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On a running host (no /proc/vmcore) `capture --no-action` would save into the real
    dump directory and run keep there, deleting real dumps for a rehearsal's file: it is
    refused until --target names where the rehearsal's dump goes, and then nothing is
    written under the configured path, whatever the target (an ssh server too)."""
    vmcore, _ = make_vmcore(tmp_path)
    crash = tmp_path / "crash"
    old = crash / "h-2020-01-01-00:00:00"
    old.mkdir(parents=True)
    (old / "vmcore").write_bytes(b"x")
    conf = tmp_path / "kdump.conf"
    conf.write_text(f"path {crash}\nkeep 1\nfinal_action poweroff\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    monkeypatch.setenv("KDUMPCTL_LOCK", str(tmp_path / "lock"))
    monkeypatch.setattr("os.path.exists", lambda p, real=os.path.exists:
                        False if p == "/proc/vmcore" else real(p))
    assert main(["capture", "--vmcore", str(vmcore), "--no-action"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kdumpctl-py: error: ") and f"into {crash}" in err
    assert "--target DIR" in err and err.count("\n") == 1
    assert [p.name for p in crash.iterdir()] == [old.name]
    conf.write_text(f"ssh root@192.0.2.1\npath {crash}\nkeep 1\nfinal_action poweroff\n")
    rehearsal = tmp_path / "rehearsal"
    assert main(["capture", "--vmcore", str(vmcore), "--no-action",
                 "--target", str(rehearsal)]) == 0
    out = capsys.readouterr().out
    (saved,) = rehearsal.iterdir()
    assert f"dump saved in {saved}" in out and (saved / "vmcore").is_file()
    assert "final step: poweroff (not done: --no-action)" in out
    assert [p.name for p in crash.iterdir()] == [old.name]


def test_capture_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    vmcore, _ = make_vmcore(tmp_path)
    conf = tmp_path / "kdump.conf"
    conf.write_text(f"path {tmp_path}/crash\ncore_collector makedumpfile -c -d 1\n"
                    "final_action poweroff\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    monkeypatch.setenv("KDUMPCTL_LOCK", str(tmp_path / "lock"))
    assert main(["capture", "--vmcore", str(vmcore), "--no-action", "--target",
                 str(tmp_path / "rehearsal")]) == 0
    out = capsys.readouterr().out
    assert "final step: poweroff (not done: --no-action)" in out
    assert f"dump saved in {tmp_path}/rehearsal/" in out
    assert not (tmp_path / "crash").exists()
    # A broken configuration still saves, with the defaults: here under tmp_path, not
    # the host's /var/crash, where each run of this test left a save.json.
    import kdumpctl_py.config

    defaults = tmp_path / "defaults"
    monkeypatch.setattr(kdumpctl_py.config, "Config",
                        lambda: dataclasses.replace(Config(), path=str(defaults)))
    conf.write_text("bogus\n")
    assert main(["capture", "--vmcore", str(tmp_path / "none"), "--no-action",
                 "--target", str(defaults)]) == 1
    captured = capsys.readouterr()
    assert "unknown directive 'bogus'; saving with the defaults" in captured.err
    assert "final step: reboot" in captured.out
    assert [p.name for p in defaults.glob("*/save.json")] == ["save.json"]
    assert json.loads(json.dumps(parse_text("keep 1\n", "f").keep)) == 1


def test_unexpected_errors_still_end_in_the_failure_action(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kdumpctl_py.capture.fallback as fallback_mod

    def broken(*args: object, **kw: object) -> None:
        raise ValueError("argument out of range")

    monkeypatch.setattr(fallback_mod, "save_with_fallback", broken)
    m = FakeMachine()
    out = run_capture(config(tmp_path, failure_action="halt"), m, "/nonexistent")
    assert out.error == "internal error: ValueError: argument out of range"
    assert m.calls == [("act", "halt")]


def test_negative_phys_base_is_saved(tmp_path: Path) -> None:
    """x86_64 KASLR makes NUMBER(phys_base) negative about half the time."""
    from kdumpctl_py.capture.kdumpfile import read_kdump
    from tests.builders import INFO, LINEAR, UTS, memory
    from tests.elfwriter import note, vmcore_bytes

    info = INFO + b"NUMBER(phys_base)=-201326592\n"
    path = tmp_path / "vmcore"
    notes = note(b"CORE", 1, bytes(336)) + note(b"VMCOREINFO", 0, info)
    low = bytearray(memory(1, 8))
    low[:len(UTS)] = UTS
    path.write_bytes(vmcore_bytes([(LINEAR, 0, bytes(low), 8 * 4096)], notes))
    out = run_capture(config(tmp_path, dump_level=1), FakeMachine(), str(path))
    assert out.saved and out.dump, out.error
    kd = read_kdump(str(Path(out.dump) / "vmcore"))
    assert kd.sub.phys_base == (-201326592) & (2**64 - 1)


def test_capture_refuses_to_act_outside_a_capture_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import os

    monkeypatch.setenv("KDUMPCTL_LOCK", str(tmp_path / "lock"))
    real = os.path.exists
    monkeypatch.setattr(os.path, "exists", lambda p: False if p == "/proc/vmcore" else real(p))
    assert main(["capture", "--vmcore", str(tmp_path / "x")]) == 2
    assert "not a capture kernel (no /proc/vmcore)" in capsys.readouterr().err


def test_system_run_reports_programs_that_cannot_run(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from kdumpctl_py.service.actions import System

    script = tmp_path / "hook"
    script.write_text("#!/bin/sh\nexit 3\n")
    assert System().run([str(script)]) == 126  # not executable
    script.chmod(0o755)
    assert System().run([str(script), "x"]) == 3
    assert System().run([str(tmp_path / "missing")]) == 127
    assert "missing: not found" in capsys.readouterr().err


def test_a_failed_mount_says_what_mount_said(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the error (and so save.json) had only mount's exit status."""
    from kdumpctl_py.errors import KdumpError
    from kdumpctl_py.service.actions import System

    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin/mount"
    fake.write_text("#!/bin/sh\necho 'mount.nfs4: access denied by server while mounting "
                    "127.0.0.1:/export' >&2\nexit 32\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    with pytest.raises(KdumpError, match=r"\(exit status 32\): mount.nfs4: access denied"):
        System().mount("nfs4", "127.0.0.1:/export", "", str(tmp_path / "mnt"))


def test_page_filter_failing_mid_save_still_leaves_a_dump(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault test: the page filter raises halfway through its walk; capture saves at
    -d 1 without struct pages, the record and the journal say why, and the project's
    readers and drgn open the dump."""
    from kdumpctl_py.capture import filter as filter_mod
    from kdumpctl_py.capture.kdumpfile import KdumpMemory
    from kdumpctl_py.capture.record import read_record
    from tests.capture.kernels import PAGE, Memory, build

    real = filter_mod.mem_maps

    def halfway(*args: object) -> object:
        it = real(*args)  # type: ignore[arg-type]
        yield next(it)
        raise RuntimeError("struct page walk fell over")

    monkeypatch.setattr(filter_mod, "mem_maps", halfway)
    mem = Memory(768, "6.1")
    src = build(mem, tmp_path / "vmcore")
    m = FakeMachine()
    out = run_capture(config(tmp_path, failure_action="halt", final_action="reboot",
                             compress="zlib"), m, str(src))
    assert out.saved and out.action == "reboot" and m.calls == [("act", "reboot")]
    assert out.record is not None and out.record.level_written == 1
    rec = read_record(out.dump or "")
    assert rec is not None and rec["level_asked"] == 31 and rec["level_written"] == 1
    assert [a["error"] for a in rec["failed"]] == ["RuntimeError: struct page walk fell over"] * 2
    with KdumpMemory(str(Path(out.dump or "") / "vmcore")) as km:
        for pfn in (100, 260, 700):
            assert km.read_phys(pfn * PAGE, PAGE) == mem.page(pfn)
    drgn = pytest.importorskip("drgn")
    prog = drgn.Program()
    prog.set_core_dump(str(Path(out.dump or "") / "vmcore"))
    assert prog.read(700 * PAGE, PAGE, True) == mem.page(700)


def test_nfs_target_is_mounted_as_nfs4_and_named_by_its_export(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    from kdumpctl_py.service import capture, target

    vmcore, _ = make_vmcore(tmp_path)
    results = tmp_path / "results"
    monkeypatch.setattr(capture, "NETWORK_RESULTS", str(results))
    cfg = parse_text("nfs srv:/dumps vers=4.2\npath /crash\n", "f")
    m = FakeMachine()
    mnt = str(tmp_path / "mnt")
    out = run_capture(cfg, m, str(vmcore), "kdumpctl_py.test_id=T9", mountpoint=mnt)
    assert out.saved and out.dump and out.dump.startswith(f"{mnt}/crash/")
    assert m.calls[0] == ("mount", "nfs4", "srv:/dumps", mnt,
                          "vers=4,soft,timeo=100,retrans=3,vers=4.2")
    assert ("umount", mnt) in m.calls
    name = Path(out.dump).name
    assert (results / status_name("T9")).read_text() == f"saved srv:/dumps/crash/{name}\n"
    assert target.shown(cfg, "/elsewhere", mnt) == "/elsewhere"
