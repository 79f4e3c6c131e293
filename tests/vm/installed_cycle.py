"""The installed-system crash cycle: UEFI firmware, GRUB, Debian's kernel and initramfs.

A disk as an installer leaves it (GPT, an EFI system partition with GRUB at the
removable path, an ext4 root made by mmdebstrap from linux-image-ARCH,
initramfs-tools, grub-efi-ARCH and systemd), booted by Debian's UEFI firmware
under TCG with no network. kdumpctl-py's wheel and nothing else of it is copied in;
a unit run at every boot takes the next step of what the README tells a new user:

  boot 1  pip install the wheel (its dependencies are Debian's packages, already
          there), `kdumpctl-py install`, `kdumpctl-py reset-crashkernel` (which edits
          /etc/default/grub and runs update-grub), reboot;
  boot 2  through GRUB with the new crashkernel=: `systemctl enable --now
          kdumpctl-py`, `kdumpctl-py test --yes`; the capture kernel boots through
          Debian's initramfs into kdumpctl-py-capture.service, saves to /var/crash
          and reboots;
  boot 3  `kdumpctl-py status --json` into a file, power off.

QEMU runs with -no-reboot, so every reboot ends it and the host starts the next.
The host then reads the root back with debugfs. The root (the mmdebstrap part) is
cached by package versions as the systemd cycle's is (systemd_cycle.build_root).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import lane
from tests.vm import systemd_cycle
from tests.vm.harness import aptsources, disk, efidisk, firstboot, uefi, wheel
from tests.vm.harness.cache import cache_root
from tests.vm.harness.config import ARCHES, Arch
from tests.vm.harness.debian import AptState
from tests.vm.harness.errors import HarnessError
from tests.vm.harness.proc import run
from tests.vm.harness.qemu import Vm
from tests.vm.systemd_cycle import BASE_PACKAGES, ROOT_PACKAGES, SUITE, Step, build_root, write

log = logging.getLogger("systemd-cycle")

REPO = Path(__file__).resolve().parents[2]
MEM_MIB = 2048  # get-default-crashkernel reserves nothing below 1G of RAM on either arch
ROOT_MIB = 3072
# An installed system's kernel flavour, its initramfs generator and boot loader, and pip
# to install the wheel (kdumpctl-py is not a Debian package).
# xz-utils (priority standard, in every installer-made system) lets the capture initramfs
# be xz; without it initramfs-tools has only gzip.
EXTRA_PACKAGES = ("linux-image-{arch}", "initramfs-tools", "grub-efi-{arch}", "e2fsprogs",
                  "python3-pip", "xz-utils")
# The install boot builds the capture initramfs under TCG: 340 s of it at load 20.
BOOT_TIMEOUT_S = {"install": 1500, "crash": 1500, "report": 600}
# arm64 under TCG runs about half as fast as x86_64 on this host.
TIMEOUT_SCALE = {"x86_64": 1.0, "arm64": 2.0}
# The three boots' timeouts at arm64's scale, and a root built from nothing.
CYCLE_TIMEOUT_S = 4 * 60 * 60
STATE = "/var/lib/kdumpctl-vm/step"
STATUS = "/var/lib/kdumpctl-vm/status.json"
IOMEM = "/var/lib/kdumpctl-vm/iomem"  # the crashed kernel's, to check the capture's memory
FORCED = "/var/lib/kdumpctl-vm/crashkernel"
# When present, the test's capture kernel gets Debian's own initrd (to measure it):
# kdumpctl-py's is removed before `test`, which loads what the finder finds then.
SYSTEM_INITRD = "/var/lib/kdumpctl-vm/system-initrd"

# Each boot's step; a failure powers off at once, so the host never waits one out.
STEP_SCRIPT = f"""\
#!/bin/sh
# The installed-system cycle: one step of a new user's setup per boot.
say() {{ echo "KDUMPCTL-VM: $*"; }}
fail() {{ say "step $step failed: $*"; sync; systemctl poweroff --force; exit 1; }}
step=$(cat {STATE} 2>/dev/null || echo install)
say "step $step begin"
case $step in
install)
    python3 -m pip install --no-index --no-deps --break-system-packages \\
        /root/kdumpctl-py/*.whl || fail pip
    kdumpctl-py install || fail install
    ls -l /boot
    systemctl daemon-reload
    # As a new user: the default first; where kdumpctl-py says the default is too
    # small here, the value it names. A value given to the cycle (to measure the
    # smallest that works) is forced instead.
    if [ -s {FORCED} ]; then
        kdumpctl-py reset-crashkernel --value "$(cat {FORCED})" --force || fail reset-crashkernel
    elif ! out=$(kdumpctl-py reset-crashkernel 2>&1); then
        say "reset-crashkernel refused: $out"
        value=$(echo "$out" | sed -n 's/.*give --value \\([0-9]*M\\).*/\\1/p')
        [ -n "$value" ] || fail reset-crashkernel
        kdumpctl-py reset-crashkernel --value "$value" || fail "reset-crashkernel --value"
    fi
    say "grub: $(grep -h '^GRUB_CMDLINE_LINUX=' /etc/default/grub)"
    echo crash > {STATE}; sync
    say "step install ok"
    systemctl reboot ;;
crash)
    say "cmdline: $(cat /proc/cmdline)"
    cat /proc/iomem > {IOMEM}
    echo report > {STATE}; sync
    systemctl enable --now kdumpctl-py.service || fail enable
    kdumpctl-py status || fail status
    if [ -e {SYSTEM_INITRD} ]; then
        kdumpctl-py initramfs remove "$(uname -r)" || fail "initramfs remove"
    fi
    kdumpctl-py estimate
    say "default: $(kdumpctl-py get-default-crashkernel)"
    kdumpctl-py test --yes || fail test ;;
report)
    kdumpctl-py status --json > {STATUS}
    echo done > {STATE}; sync
    say "step report ok"
    systemctl poweroff ;;
*)
    fail "unknown step" ;;
esac
"""

STEP_UNIT = """\
[Unit]
Description=installed-system cycle: the next step of a new user's setup
After=kdumpctl-py.service multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/kdumpctl-vm-step
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
"""

# /etc/default/grub as the installer writes it, with a serial console and no delay.
DEFAULT_GRUB = """\
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console={console}"
GRUB_TERMINAL=console
"""


@dataclass
class Result(systemd_cycle.Result):
    report: dict[str, Any] | None = None  # `kdumpctl-py analyse --json` of the dump

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "report": self.report}


def packages(arch: Arch) -> tuple[str, ...]:
    """The root's packages. The cycle saves to /var/crash and needs none of the network
    cycles' ssh and NFS clients; the arm64 root, each of whose maintainer scripts runs
    under qemu-user, is built without them, the x86_64 root keeps them as it was
    measured (tests/vm/README.md)."""
    base = BASE_PACKAGES if arch.name == "arm64" else ROOT_PACKAGES
    return base + tuple(p.format(arch=arch.debian) for p in EXTRA_PACKAGES)


def kernel_release(root: Path) -> str:
    """The release of the one kernel mmdebstrap installed."""
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1 or not (root / "boot" / f"initrd.img-{kernels[0]}").exists():
        raise HarnessError(f"expected one kernel with its initrd in the root's /boot: {kernels}")
    return kernels[0]


def customise(root: Path, arch: Arch, project: wheel.ProjectWheel, crashkernel: str | None,
              system_initrd: bool = False) -> None:
    """What an installer leaves, plus the wheel and the step unit; nothing of kdumpctl-py."""
    # root is a hard-linked copy of the cached tree: every file is unlinked before it
    # is written, so the cache never changes.
    dest = root / "root/kdumpctl-py"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(project.path, dest / project.path.name)
    _put(root, "/usr/local/sbin/kdumpctl-vm-step", STEP_SCRIPT, 0o755)
    _put(root, "/etc/systemd/system/kdumpctl-vm-step.service", STEP_UNIT)
    _put(root, "/etc/default/grub", DEFAULT_GRUB.format(console=arch.console))
    _put(root, "/etc/fstab", f"LABEL={efidisk.ROOT_LABEL} / ext4 rw,errors=remount-ro 0 1\n")
    _put(root, "/etc/hostname", "kdumpvm\n")
    _put(root, "/etc/machine-id", "6b64756d7063746c2d70792d766d0002\n")
    (root / "var/lib/kdumpctl-vm").mkdir(parents=True, exist_ok=True)
    if crashkernel is not None:
        _put(root, FORCED, crashkernel + "\n")
    if system_initrd:
        _put(root, SYSTEM_INITRD, "")
    for unit in ("getty@.service", "serial-getty@.service", "getty.target",
                 "systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "e2scrub_all.timer", "fstrim.timer"):
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    run(["systemctl", f"--root={root}", "enable", "kdumpctl-vm-step.service"])


def _put(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    (root / rel.lstrip("/")).unlink(missing_ok=True)
    write(root, rel, text, mode)


def run_cycle(out: Path, arch_name: str = "x86_64", crashkernel: str | None = None,
              system_initrd: bool = False, driver_policy: str = firstboot.TARGETED) -> Result:
    """The whole cycle; `crashkernel` forces that value instead of what a new user gets,
    `system_initrd` makes the capture kernel boot Debian's initrd instead of kdumpctl-py's,
    `driver_policy` is the installer's answer for that initrd (a foreign root's only:
    firstboot.py; the x86_64 root's is initramfs-tools' default, generic)."""
    out.mkdir(parents=True, exist_ok=True)
    res = Result(out)
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        _cycle(res, ARCHES[arch_name], cache_root(), work, crashkernel, system_initrd,
               driver_policy)
    except HarnessError as e:
        res.error = str(e)
    (out / "result.json").write_text(json.dumps(res.as_dict(), indent=2, default=str) + "\n")
    return res


def _cycle(res: Result, arch: Arch, cache: Path, work: Path, crashkernel: str | None,
           system_initrd: bool, driver_policy: str) -> None:
    out = res.out
    with Step(res, "apt"):
        apt, mirrors = _apt(cache, arch)
    with Step(res, "root"):
        cached_root = build_root(cache, apt, mirrors, packages(arch), "installed-root",
                                 driver_policy)
    with Step(res, "wheel"):
        project = wheel.build(REPO, work)
        if project is None:
            raise HarnessError("no wheel")
    with Step(res, "image"):
        root = work / "root"
        run(["cp", "-al", cached_root, root])
        release = kernel_release(root)
        customise(root, arch, project, crashkernel, system_initrd)
        grub = efidisk.GRUB[arch.debian]
        efi = efidisk.install_grub(root, arch.debian, work, release,
                                   f"console={arch.console}")
        esp, root_img, image = work / "esp.img", work / "root.img", work / "disk.img"
        efidisk.make_esp(esp, efi, grub.removable)
        efidisk.make_root(root_img, root, ROOT_MIB)
        shutil.rmtree(root)
        efidisk.assemble(image, arch.debian, esp, root_img)
        esp.unlink()
        root_img.unlink()
    command = uefi.argv(arch, image, MEM_MIB, 1)
    try:
        for step in ("install", "crash", "report"):
            with Step(res, f"boot-{step}"):
                res.console += _boot(command, out, step,
                                     BOOT_TIMEOUT_S[step] * TIMEOUT_SCALE[arch.name])
    finally:
        with Step(res, "read-back"):
            _read_back(res, image, work)
    with Step(res, "analyse"):
        res.report = _analyse(res.out)


def _apt(cache: Path, arch: Arch) -> tuple[AptState, aptsources.Mirrors]:
    mirrors = aptsources.find_mirrors(aptsources.machine_entries())
    apt = AptState(cache, SUITE, arch, mirrors)
    apt.update()
    return apt, mirrors


def cycle_job(arch_name: str, tmp_path_factory: pytest.TempPathFactory) -> lane.Job:
    """The VM tier's lane job (tests/lane.py) for an arch's cycle, in a process of its own
    (the tests' guests meanwhile log to the same logger), its log installed-cycle.log."""

    def job(spawn: lane.Spawn) -> Result:
        out = tmp_path_factory.mktemp(f"installed-{arch_name}")
        with open(out / "installed-cycle.log", "wb") as log:
            lane.run(spawn, [sys.executable, "-m", "tests.vm.installed_cycle", arch_name,
                             str(out)], CYCLE_TIMEOUT_S, stdout=log,
                     stderr=subprocess.STDOUT, cwd=REPO)
        return read_result(out)

    return job


def read_result(out: Path) -> Result:
    """What run_cycle returned, from the result.json it left in `out`: the cycle of
    another process (`python3 -m tests.vm.installed_cycle ARCH OUT`, as the VM tier's
    lane runs it: tests/lane.py)."""
    path = out / "result.json"
    if not path.exists():
        return Result(out, error=f"the cycle left no {path}: see installed-cycle.log there")
    data = json.loads(path.read_text())
    return Result(out, timings=data["timings"], status=data["status"], dumps=data["dumps"],
                  error=data["error"], reports=data["reports"], report=data["report"])


def _analyse(out: Path) -> dict[str, Any]:
    """`kdumpctl-py analyse --json` of the saved dump, with no debug info: the panic
    message comes from the kernel's own log in the dump."""
    vmcores = sorted((out / "crash").glob("*/vmcore"))
    if not vmcores:
        raise HarnessError("no vmcore was read back")
    r = run([wheel.host_python(REPO), "-m", "kdumpctl_py", "analyse", vmcores[-1], "--json"],
            cwd=REPO)
    report: dict[str, Any] = json.loads(r.stdout)
    (out / "report.json").write_text(r.stdout)
    return report


def _boot(command: list[str], out: Path, name: str, timeout: float) -> str:
    with Vm(command, out / f"console-{name}.log", out / f"qemu-{name}.stderr") as vm:
        rc = vm.wait_exit(timeout)
        text = vm.console.text().decode(errors="replace")
    tail = "\n".join(text.splitlines()[-60:])
    if rc is None:
        raise HarnessError(f"boot {name}: QEMU still running after {timeout:.0f} s\n{tail}")
    if f"KDUMPCTL-VM: step {name} failed" in text or "Kernel panic - not syncing" in text \
            and name != "crash":
        raise HarnessError(f"boot {name} failed\n{tail}")
    return text


def _read_back(res: Result, image: Path, work: Path) -> None:
    root = work / "root.img"
    efidisk.extract_root(image, efidisk.ESP_MIB, root)
    disk.check(root, res.out / "e2fsck.log")
    dest = work / "read-back"
    dest.mkdir(exist_ok=True)
    for src in (STATUS, IOMEM, "/var/crash", "/var/lib/kdumpctl-py", "/etc/default/grub",
                "/boot/grub/grub.cfg"):
        run(["debugfs", "-R", f"rdump {src} {dest}", root], check=False)
    status = dest / "status.json"
    if status.exists() and status.stat().st_size:
        res.status = json.loads(status.read_text())
    for name in ("grub", "grub.cfg", "iomem"):
        if (dest / name).exists():
            shutil.copy(dest / name, res.out / name)
    crash = dest / "crash"
    if crash.is_dir():
        res.dumps = sorted(str(p.relative_to(crash)) for p in crash.rglob("*") if p.is_file())
        shutil.copytree(crash, res.out / "crash", dirs_exist_ok=True)
    root.unlink()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    flags = ("--system-initrd", "--generic")
    args = [a for a in sys.argv[1:] if a not in flags]
    arch = args[0] if args else "x86_64"
    out = Path(args[1] if len(args) > 1 else f"installed-cycle-{arch}").resolve()
    res = run_cycle(out, arch, args[2] if len(args) > 2 else None,
                    "--system-initrd" in sys.argv,
                    firstboot.GENERIC if "--generic" in sys.argv else firstboot.TARGETED)
    print(json.dumps(res.as_dict(), indent=2, default=str))
    return 0 if res.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
