"""units/: systemd-analyze verify, the udev rule's logic, the kernel hooks."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kdumpctl_py.cli import main
from kdumpctl_py.plan.capture_cmdline import CAPTURE_UNIT
from kdumpctl_py.service.install import SHIPPED_BIN

UNITS = Path(__file__).resolve().parents[1] / "units"


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / name)
    return cp


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The installed units, pointed at an executable that exists, verify cleanly."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kdumpctl-py").write_text("#!/bin/sh\n")
    (bindir / "kdumpctl-py").chmod(0o755)
    assert main(["install", "--prefix", str(tmp_path / "root"), "--bindir", str(bindir)]) == 0
    capsys.readouterr()
    unit_dir = tmp_path / "root/usr/lib/systemd/system"
    units = sorted(str(p) for p in unit_dir.glob("kdumpctl-py*.*"))
    assert [Path(u).name for u in units] == [
        "kdumpctl-py-capture.service", "kdumpctl-py-metrics.service",
        "kdumpctl-py-metrics.timer", "kdumpctl-py-report.service", "kdumpctl-py.service"]
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_first_kernel_service() -> None:
    u = unit("kdumpctl-py.service")
    s = u["Service"]
    assert s["Type"] == "oneshot" and s["RemainAfterExit"] == "yes"
    assert s["ExecCondition"].endswith("crashkernel /proc/cmdline")
    assert [s[k].split()[-1] for k in ("ExecStart", "ExecStop", "ExecReload")] == \
        ["start", "stop", "reload"]
    assert u["Install"]["WantedBy"] == "multi-user.target"


def test_next_boot_report_is_off_the_critical_path() -> None:
    """Pulled in by kdumpctl-py.service (multi-user.target would wait for a unit it wants
    itself) and ordered after it, at idle priority."""
    assert "kdumpctl-py-report.service" in unit("kdumpctl-py.service")["Unit"]["Wants"]
    u = unit("kdumpctl-py-report.service")
    assert "kdumpctl-py.service" in u["Unit"]["After"].split() and "Install" not in u
    s = u["Service"]
    assert s["Type"] == "oneshot" and s["ExecStart"].split()[-1] == "report"
    assert (s["Nice"], s["CPUSchedulingPolicy"], s["IOSchedulingClass"]) == ("19", "idle",
                                                                            "idle")


def test_metrics_timer_runs_status_prometheus() -> None:
    s = unit("kdumpctl-py-metrics.service")["Service"]
    assert s["ExecStart"].split()[1:3] == ["status", "--prometheus"]
    assert s["SuccessExitStatus"] == "3"  # not operational is a metric, not a failure
    t = unit("kdumpctl-py-metrics.timer")
    assert t["Timer"]["OnUnitActiveSec"] and t["Install"]["WantedBy"] == "timers.target"


def test_capture_service_matches_the_capture_command_line() -> None:
    u = unit("kdumpctl-py-capture.service")
    assert CAPTURE_UNIT == "systemd.unit=kdumpctl-py-capture.service"
    assert u["Unit"]["ConditionPathExists"] == "/proc/vmcore"
    assert u["Unit"]["DefaultDependencies"] == "no"
    assert "local-fs.target" in u["Unit"]["After"]
    # The network only when a network target's command line pulls it in.
    assert "network-online.target" in u["Unit"]["After"].split()
    assert "network-online.target" not in u["Unit"]["Wants"]
    assert u["Service"]["ExecStart"].split()[-1] == "capture"


def test_udev_rule_reloads_on_hotplug_unless_the_kernel_does_it() -> None:
    rules = [line for line in (UNITS / "98-kdumpctl-py.rules").read_text().splitlines()
             if line and not line.startswith("#")]
    assert rules == [
        'SUBSYSTEM=="cpu", ACTION=="add|remove", GOTO="kdumpctl_py_reload"',
        'SUBSYSTEM=="memory", ACTION=="online|offline", GOTO="kdumpctl_py_reload"',
        'GOTO="kdumpctl_py_end"',
        'LABEL="kdumpctl_py_reload"',
        'ATTRS{crash_hotplug}=="1", GOTO="kdumpctl_py_end"',
        'RUN+="/usr/bin/systemctl --no-block try-reload-or-restart kdumpctl-py.service"',
        'LABEL="kdumpctl_py_end"',
    ]


def hook(tmp_path: Path, name: str, *args: str, **env: str) -> str:
    """Run a kernel hook as installed (kdumpctl-py's path rewritten to a stand-in), with
    stand-ins for uname and systemctl too; the calls they got, one a line."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "uname").write_text("#!/bin/sh\necho 6.1.0-test\n")
    for tool in ("systemctl", "kdumpctl-py"):
        (bindir / tool).write_text(f'#!/bin/sh\necho {tool} "$@" >> {tmp_path}/calls\nexit 1\n')
    for f in bindir.iterdir():
        f.chmod(0o755)
    script = tmp_path / name
    script.write_text((UNITS / name).read_text().replace(SHIPPED_BIN, str(bindir / "kdumpctl-py")))
    script.chmod(0o755)
    r = subprocess.run([str(script), *args], capture_output=True, text=True, check=False,
                       env=dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", **env))
    assert r.returncode == 0, r.stderr  # never fails a kernel installation
    calls = tmp_path / "calls"
    text = calls.read_text() if calls.exists() else ""
    calls.unlink(missing_ok=True)
    return text


RELOAD = "systemctl --no-block try-reload-or-restart kdumpctl-py.service\n"


def test_kernel_install_plugins(tmp_path: Path) -> None:
    build = "kdumpctl-py initramfs build {}\n"
    assert hook(tmp_path, "60-kdumpctl-py.install", "add", "6.2.0-other", "/boot/x") == \
        build.format("6.2.0-other")
    assert hook(tmp_path, "60-kdumpctl-py.install", "remove", "6.1.0-test") == \
        "kdumpctl-py initramfs remove 6.1.0-test\n"
    assert hook(tmp_path, "60-kdumpctl-py.install", "add", "6.1.0-test", "/boot/x") == \
        build.format("6.1.0-test") + RELOAD
    assert hook(tmp_path, "92-kdumpctl-py.install", "add", "6.2.0-other", "/d", "/x") == \
        "kdumpctl-py reset-crashkernel --kernel /boot/vmlinuz-6.2.0-other --auto\n"
    assert hook(tmp_path, "92-kdumpctl-py.install", "remove", "6.2.0-other") == ""


def test_debian_kernel_hooks(tmp_path: Path) -> None:
    """/etc/kernel/postinst.d and postrm.d: as a kernel package's maintainer scripts run them."""
    added = ("kdumpctl-py initramfs build 6.2.0-new\n"
             "kdumpctl-py reset-crashkernel --kernel /boot/vmlinuz-6.2.0-new --auto\n")
    post = "kdumpctl-py.postinst"
    assert hook(tmp_path, post, "6.2.0-new", "/boot/vmlinuz-6.2.0-new") == added
    assert hook(tmp_path, post, "6.2.0-new", "/boot/vmlinuz-6.2.0-new",
                DEB_MAINT_PARAMS="'configure' ''") == added
    assert hook(tmp_path, post, "6.2.0-new", DEB_MAINT_PARAMS="'abort-upgrade'") == ""
    assert hook(tmp_path, post, "6.1.0-test", "/boot/vmlinuz-6.1.0-test").endswith(RELOAD)
    assert hook(tmp_path, "kdumpctl-py.postrm", "6.2.0-old", DEB_MAINT_PARAMS="'remove'") == \
        "kdumpctl-py initramfs remove 6.2.0-old\n"
    assert hook(tmp_path, "kdumpctl-py.postrm", "6.2.0-old", DEB_MAINT_PARAMS="'upgrade'") == ""
