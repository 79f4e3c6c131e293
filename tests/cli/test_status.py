from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from tests.conftest import SNAPSHOT_NAMES, SNAPSHOTS, expected_facts


def status_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main([*argv, "status", "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_status_on_fixture(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    want = expected_facts(name)
    code, st = status_json(capsys, "--sysroot", str(SNAPSHOTS / name))
    assert st["arch"] == want["arch"]
    assert [[r["start"], r["end"]] for r in st["reserved"]["regions"]] == want["regions"]
    assert st["load_paths"] == want["load_paths"]
    assert st["method"] == want["method"]
    assert st["operational"] is want["operational"]
    assert code == (0 if want["operational"] else 3)
    assert (st["reason"] is None) == want["operational"]
    # The text form says the same in one headline.
    assert main(["--sysroot", str(SNAPSHOTS / name), "status"]) == code
    first, text = capsys.readouterr().out.split("\n", 1)
    assert first.startswith("snapshot of ") and st["snapshot"]["taken"] in first
    assert text.startswith("kdump is operational" if want["operational"] else "kdump is NOT")


def test_env_sysroot(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    name = SNAPSHOT_NAMES[0]
    monkeypatch.setenv("KDUMPCTL_SYSROOT", str(SNAPSHOTS / name))
    _, st = status_json(capsys)
    assert st["arch"] == expected_facts(name)["arch"]


def test_live_snapshot_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status --json read from a fresh snapshot equals the live one, time-dependent fields aside."""
    live_code, live = status_json(capsys)
    for out in (tmp_path / "snap", tmp_path / "snap.tar.gz"):
        assert main(["snapshot", str(out)]) == 0
        assert "snapshot written" in capsys.readouterr().out
        size = out.stat().st_size if out.is_file() else sum(
            f.stat().st_size for f in out.rglob("*") if f.is_file())
        assert size < 1 << 20
        code, snap = status_json(capsys, "--sysroot", str(out))
        assert snap["snapshot"]["host"] == os.uname().nodename and live["snapshot"] is None
        assert {**snap, "free_bytes": None, "snapshot": None} == {**live, "free_bytes": None}
        assert code == live_code


def test_snapshot_refuses_existing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").write_text("")
    assert main(["snapshot", str(tmp_path / "x")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.incomplete")


@pytest.mark.parametrize("argv", [["snapshot", "{out}.tar.gz"],
                                  ["--sysroot", str(SNAPSHOTS / SNAPSHOT_NAMES[0]), "status",
                                   "--prometheus", "{out}.prom"]])
def test_an_output_in_a_missing_directory_is_bad_input(
        argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped directory is bad input (exit 2), as for save --target and reassemble."""
    out = str(tmp_path / "typo" / "x")
    argv = [a.format(out=out) for a in argv]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"kdumpctl-py: error: cannot write {argv[-1]}: {tmp_path / 'typo'} is not a "
        "directory; create it, or name another file\n")
    assert not list(tmp_path.iterdir())


def _probes(root: Path, state: str) -> Path:
    from kdumpctl_py.facts.view import META

    meta = json.loads((root / META).read_text())
    meta["probes"] = {"extended": "missing", "kexec_file_load": state, "kexec_load": state}
    (root / META).write_text(json.dumps(meta))
    return root


def test_status_says_first_what_blocks_first(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """No kexec comes before no reservation, and no step that cannot help (issue 23, item 2)."""
    from tests.builders import synthetic_snapshot

    root = _probes(synthetic_snapshot(tmp_path), "missing")
    code, st = status_json(capsys, "--sysroot", str(root))
    assert code == 3
    assert st["reason"] == ("no capture kernel can be loaded: this kernel was built without "
                            "kexec (CONFIG_KEXEC*)")


@pytest.mark.parametrize("grub,advice", [
    (True, "(kdumpctl-py reset-crashkernel)"),
    (False, "(in the boot loader's configuration)"),
])
def test_reset_crashkernel_advised_only_where_it_can_edit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], grub: bool, advice: str) -> None:
    from tests.builders import debian, synthetic_snapshot

    root = _probes(synthetic_snapshot(tmp_path), "available")
    if grub:
        debian(root)
    _, st = status_json(capsys, "--sysroot", str(root))
    assert st["reason"] == ("no memory is reserved for a capture kernel: add crashkernel= to "
                            f"the kernel command line {advice} and reboot")


@pytest.mark.parametrize(("cmdline", "asked"), [
    ("ro crashkernel=auto crashkernel=128M,low", "auto"),
    ("ro crashkernel=256M crashkernel=128M,low", "256M"),
    ("ro crashkernel=512M,high crashkernel=128M,low", "512M,high"),
])
def test_status_names_the_crashkernel_the_kernel_went_by(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], cmdline: str, asked: str) -> None:
    """Found by review: status named the last crashkernel= word, a ,low one, where the
    kernel goes by the last without a suffix, else by ,high."""
    from tests.builders import synthetic_snapshot

    root = _probes(synthetic_snapshot(tmp_path, cmdline), "available")
    _, st = status_json(capsys, "--sysroot", str(root))
    assert st["reason"] == (f"crashkernel={asked} was asked for but the kernel reserved "
                            "nothing: see the boot log and kdumpctl-py showmem")
    main(["--sysroot", str(root), "status"])
    assert f"  crashkernel=     {asked}\n" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["x.tar", "x.tar.xz", "x.zip", "x.gz", "X.TAR"])
def test_snapshot_refuses_names_it_would_not_produce(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["snapshot", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".tar.gz" in err
    assert not list(tmp_path.iterdir())


def test_snapshot_status_says_it_is_a_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) in (0, 3)
    assert not capsys.readouterr().out.startswith("snapshot of")
    for command in ("status", "showmem", "estimate"):
        assert main(["--sysroot", str(SNAPSHOTS / "host-x86_64"), command]) in (0, 3)
        assert capsys.readouterr().out.startswith(
            "snapshot of vm taken 2026-11-26T11:01:52+00:00\n"), command


@pytest.mark.parametrize("name", SNAPSHOT_NAMES)
def test_prometheus_metrics_of_fixture(name: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    want = expected_facts(name)
    out = tmp_path / "kdumpctl-py.prom"
    code = main(["--sysroot", str(SNAPSHOTS / name), "status", "--prometheus", str(out)])
    assert code == (0 if want["operational"] else 3)
    assert capsys.readouterr().out == ""
    values = {s.name: s.value for f in text_string_to_metric_families(out.read_text())
              for s in f.samples if not s.labels}
    assert values["kdumpctl_py_operational"] == int(want["operational"])
    if want["regions"]:
        assert values["kdumpctl_py_crash_region_bytes"] == sum(
            end - start + 1 for start, end in want["regions"])
    assert not list(tmp_path.glob(".*.tmp"))  # written whole, nothing left beside it


def test_status_answers_for_the_configured_method(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The method and command line status shows are those `start` would use (issue 20)."""
    root = str(SNAPSHOTS / "debian12-amd64")
    conf = tmp_path / "kdump.conf"
    conf.write_text("method classic\ncmdline_append ignore_loglevel\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    main(["--sysroot", root, "status", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["method"] == "classic" and report["method_why"].startswith("forced by")
    assert report["capture_cmdline"].endswith(" ignore_loglevel")
    conf.write_text("method extended\n")
    main(["--sysroot", root, "status", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["method"] is None and not report["operational"]
    assert report["reason"] == ("no capture kernel can be loaded: extended was asked for but "
                                "extended is missing")


def test_status_says_what_start_would_fail_with(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: a machine where start fails (here no kernel in /boot) was told to
    run start; status says why start would fail instead, and the advice stays where it
    would not."""
    from tests.builders import synthetic_snapshot

    root = _probes(synthetic_snapshot(tmp_path, crash=((0x2F000000, 0x3EFFFFFF),)), "available")
    code, st = status_json(capsys, "--sysroot", str(root))
    assert code == 3 and st["reason"].startswith(
        "no capture kernel is loaded, and kdumpctl-py start would fail: ")
    assert main(["--sysroot", str(root), "start", "--dry-run"]) != 0
    assert st["reason"].endswith(capsys.readouterr().err.removeprefix("kdumpctl-py: error: ")
                                 .rstrip("\n"))
    code, st = status_json(capsys, "--sysroot", str(SNAPSHOTS / "debian12-amd64"))
    assert st["reason"] == "no capture kernel is loaded: run kdumpctl-py start"


@pytest.mark.parametrize(("config", "where", "directory"), [
    ("ssh kdump@dumps.example.org\n", "the ssh server kdump@dumps.example.org",
     "kdump@dumps.example.org:/var/crash"),
    ("nfs dumps.example.org:/crash\n", "the NFS export dumps.example.org:/crash",
     "dumps.example.org:/crash/var/crash"),
    ("ext4 LABEL=dumps\n", "ext4 LABEL=dumps, not mounted here",
     "/var/crash on ext4 LABEL=dumps"),
])
def test_status_says_where_dumps_it_cannot_list_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        config: str, where: str, directory: str) -> None:
    """Found by review: with an ssh target, status listed the local path's dumps (none, or
    what dump_to_rootfs saved) as if they were the target's; and (found by review too) its
    dump target was the local path with this root's free space (docs/json.md: `target` is
    user@host:/path for an ssh target, `free_bytes` null for a network one)."""
    conf = tmp_path / "kdump.conf"
    conf.write_text(config)
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    _, st = status_json(capsys, "--sysroot", str(SNAPSHOTS / "debian12-amd64"))
    assert st["dumps_elsewhere"] == where
    assert (st["target"], st["free_bytes"]) == (directory, None)
    main(["--sysroot", str(SNAPSHOTS / "debian12-amd64"), "status"])
    out = capsys.readouterr().out
    assert f"  newest dump      not listed: the dumps are on {where}\n" in out
    assert f"  dump target      {directory} (unknown free)\n" in out
    prom = tmp_path / "kdumpctl-py.prom"
    main(["--sysroot", str(SNAPSHOTS / "debian12-amd64"), "status", "--prometheus", str(prom)])
    assert "kdumpctl_py_operational " in prom.read_text()
    assert "kdumpctl_py_dumps" not in prom.read_text()  # not this machine's path's count
