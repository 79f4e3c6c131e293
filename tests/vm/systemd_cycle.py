"""The systemd crash cycle: a Debian root file system with systemd as init, kdumpctl-py
installed from its wheel, and kdumpctl-py.service / kdumpctl-py-capture.service doing the
work, driven by `kdumpctl-py test --yes`.

Three kernel boots in two QEMU runs, no network, no mounts on the host:
  run 1  first kernel: kdumpctl-py.service loads the capture kernel, a oneshot unit
         (enabled for the test only) runs `kdumpctl-py test --yes`; the panic boots the
         capture kernel with systemd.unit=kdumpctl-py-capture.service, which saves
         the dump and reboots (QEMU runs with -no-reboot, so it exits);
  run 2  first kernel again: kdumpctl-py-report.service reports the dump to the journal,
         then a oneshot unit syncs the journal, writes `kdumpctl-py status --json` to
         the disk and powers off.
The host reads the disk back with debugfs.

The root comes from Debian's packages through mmdebstrap (root mode without mounts,
into a directory), cached outside git under the harness cache keyed by the resolved package
versions; per run only the wheel, the units, the configuration and /boot are added,
and `mke2fs -d` makes the image. The kernel and the busybox initramfs that mounts the
root come from the harness (tests/vm/harness), as for the busybox cycles.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.vm.harness import aptsources, disk, firstboot, foreignroot, rootinitrd, wheel
from tests.vm.harness.cache import building_dir, cache_root
from tests.vm.harness.config import ARCHES
from tests.vm.harness.costs import Costs
from tests.vm.harness.debian import AptState, extract
from tests.vm.harness.errors import HarnessError
from tests.vm.harness.proc import run
from tests.vm.harness.qemu import Vm, VmSpec
from tests.vm.network import Guest

log = logging.getLogger("systemd-cycle")

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
ARCH = ARCHES["x86_64"]
# The guest's packages: systemd as init, the interpreter and kdumpctl-py's dependencies
# as Debian packages. mmdebstrap's "essential" variant adds only Essential: yes packages.
BASE_PACKAGES = ("systemd", "systemd-sysv", "udev", "python3", "python3-libfdt",
                 "python3-pyelftools", "python3-numpy", "python3-zstandard", "python3-systemd")
# The ssh and NFS targets' clients, for the network cycles.
ROOT_PACKAGES = BASE_PACKAGES + ("openssh-client", "nfs-common")
# root mode, but with no mounts at all (/dev, /proc, /sys are not mounted into the
# directory): nothing of the host can be reached through the tree, even if a run dies.
MMDEBSTRAP_OPTIONS = ("--mode=root", "--variant=essential", "--skip=chroot/mount")
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*",
                 "/usr/share/info/*", "/usr/share/lintian/*")
MEM_MIB = 768
CRASHKERNEL = "256M"
DISK_MIB = 1536
STEP_PARAM = "kdumpctl_vm.step"
RUN1_TIMEOUT_S = 900
RUN2_TIMEOUT_S = 400

GUEST_CONFIG = f"""\
# kdumpctl-py configuration of the systemd crash-cycle guest
path /var/crash
core_collector makedumpfile -z -d 31 --message-level 7
keep 2
final_action reboot
failure_action reboot
kdump_pre /usr/local/bin/kdumpctl-vm-hook pre
kdump_post /usr/local/bin/kdumpctl-vm-hook post
cmdline_remove {STEP_PARAM}
"""

HOOK = """\
#!/bin/sh
# kdump_pre and kdump_post of the crash-cycle guest: say so on the console.
echo "KDUMPCTL-VM: kdump_$1 ran with: $*"
echo "KDUMPCTL-VM: capture cmdline: $(cat /proc/cmdline)"
exit 0
"""

CRASH_UNIT = f"""\
[Unit]
Description=crash-cycle: kdumpctl-py test --yes (enabled for the test only)
Requires=kdumpctl-py.service
After=kdumpctl-py.service
ConditionKernelCommandLine={STEP_PARAM}=crash

[Service]
Type=oneshot
ExecStart=/usr/bin/kdumpctl-py test --yes

[Install]
WantedBy=multi-user.target
"""

REPORT_UNIT = f"""\
[Unit]
Description=crash-cycle: record kdumpctl-py status --json, then power off
After=kdumpctl-py.service kdumpctl-py-report.service
ConditionKernelCommandLine={STEP_PARAM}=report
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
# The next-boot report's journal entry on disk before the forced power-off.
ExecStartPre=/usr/bin/journalctl --sync
ExecStart=/usr/bin/kdumpctl-py status --json
SuccessExitStatus=3
StandardOutput=file:/var/lib/kdumpctl-vm/status.json

[Install]
WantedBy=multi-user.target
"""

# Every service's output on the serial console too, so a failing cycle explains itself.
SYSTEM_CONF = """\
[Manager]
DefaultStandardOutput=journal+console
DefaultStandardError=journal+console
ShowStatus=yes
"""

# After rootinitrd.PROLOGUE: the root read-only, then systemd.
INIT = """\
$bb mount -t ext4 -o ro /dev/vda /root || { echo "cannot mount /dev/vda"; $bb sh; }
$bb umount /proc /sys
$bb mount --move /dev /root/dev
exec $bb switch_root /root /sbin/init
"""

@dataclass
class Result:
    out: Path
    timings: dict[str, float] = field(default_factory=dict)
    status: dict[str, Any] | None = None
    dumps: list[str] = field(default_factory=list)
    console: str = ""
    error: str | None = None
    # The journal entries of the next boot's report (MESSAGE_ID=DUMP_REPORT), read on the
    # host from the guest's /var/log/journal with journalctl --directory.
    reports: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"timings": self.timings, "status": self.status, "dumps": self.dumps,
                "reports": self.reports, "error": self.error}


class Step:
    def __init__(self, result: Result, name: str) -> None:
        self.result, self.name = result, name

    def __enter__(self) -> None:
        self.t0 = time.monotonic()
        log.info("%s ...", self.name)

    def __exit__(self, *exc: object) -> None:
        seconds = round(time.monotonic() - self.t0, 1)
        self.result.timings[self.name] = seconds
        log.info("%s: %.1f s", self.name, seconds)


# -- the root file system ---------------------------------------------------------------


def root_key(apt: AptState, packages: tuple[str, ...] = ROOT_PACKAGES,
             driver_policy: str = firstboot.TARGETED) -> tuple[str, list[str]]:
    """A cache key from the versions apt would install for `packages`."""
    closure = apt.resolve(list(packages))
    versions = sorted(p.key for p in closure)
    key: dict[str, Any] = {"packages": versions, "roots": packages,
                           "options": MMDEBSTRAP_OPTIONS, "excludes": DPKG_EXCLUDES}
    if apt.arch.debian != foreignroot.host_arch():
        key["foreign"] = {**foreignroot.options(), **firstboot.options(driver_policy)}
    data = json.dumps(key, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16], versions


def build_root(cache: Path, apt: AptState, mirrors: aptsources.Mirrors,
               packages: tuple[str, ...] = ROOT_PACKAGES, name: str = "systemd-root",
               driver_policy: str = firstboot.TARGETED) -> Path:
    """The mmdebstrap'd root of `packages` for apt's architecture, cached by versions;
    another architecture's is configured under proot (harness/foreignroot.py) and
    gets its initramfs at a first boot (harness/firstboot.py) with the installer's
    `driver_policy`."""
    key, versions = root_key(apt, packages, driver_policy)
    final = cache / name / f"{SUITE}-{apt.arch.debian}-{key}"
    if (final / "root" / "usr" / "bin" / "python3").exists():
        return final / "root"
    if shutil.which("mmdebstrap") is None:
        raise HarnessError("mmdebstrap not found", hint="apt-get install mmdebstrap "
                           "(setup.sh does)")
    sources = [f"deb {mirrors.archive} {SUITE} main",
               f"deb {mirrors.archive} {SUITE}-updates main"]
    if mirrors.security:
        sources.append(f"deb {mirrors.security} {SUITE}-security main")
    with building_dir(final) as tmp:
        if apt.arch.debian == foreignroot.host_arch():
            run(["mmdebstrap", *MMDEBSTRAP_OPTIONS, "--quiet",
                 f"--include={','.join(packages)}",
                 *[f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES],
                 f"--architectures={apt.arch.debian}", SUITE, tmp / "root", *sources],
                timeout=3600)
        else:
            costs = Costs()
            foreignroot.build(tmp / "root", apt.arch.debian, SUITE, packages, sources,
                              DPKG_EXCLUDES, tmp / "debs", costs)
            with costs.step("first-boot"):
                firstboot.make_initramfs(tmp / "root", apt.arch, busybox_dir(cache, apt),
                                         tmp / "first-boot", driver_policy)
            costs.write(tmp / "build-costs.json")
        (tmp / "packages.txt").write_text("\n".join(versions) + "\n")
    return final / "root"


def busybox_dir(cache: Path, apt: AptState) -> Path:
    """Debian's busybox-static for apt's architecture, unpacked in the cache."""
    busybox = apt.candidate("busybox-static")
    if busybox is None:
        raise HarnessError(f"{SUITE} has no busybox-static")
    debs = apt.download([busybox], cache / "debs" / f"{SUITE}-{apt.arch.debian}")
    return extract(debs[busybox], busybox, cache)


def guest_initrd(kernel_dir: Path, release: str, busybox_dir: Path, path: Path,
                 extra_modules: tuple[str, ...] = ()) -> None:
    """busybox, the virtio modules, and /init that mounts /dev/vda and runs systemd."""
    # xz, as captureroot.py says why
    rootinitrd.write(ARCH, kernel_dir, release, busybox_dir, INIT, path, extra_modules, xz=True)


def write(root: Path, rel: str, text: str | bytes, mode: int = 0o644) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)


def customise(root: Path, project: wheel.ProjectWheel, vmlinuz: Path, initrd: Path,
              release: str, net: Guest | None = None) -> None:
    """What makes the cached root this run's guest: kdumpctl-py and the test's units."""
    for rel, entry in wheel.guest_files(project).items():
        write(root, rel, entry.read(), entry.perm)
    # kdumpctl-py's own installer puts the units, rules, man pages and config in place.
    run([wheel.host_python(REPO), "-m", "kdumpctl_py", "install", "--prefix", root,
         "--bindir", "/usr/bin"], cwd=REPO)
    if net is None:
        write(root, "/etc/kdumpctl-py/kdump.conf", GUEST_CONFIG)
    else:
        write(root, "/etc/kdumpctl-py/kdump.conf",
              GUEST_CONFIG.replace("path /var/crash\n", f"path {net.path}\n" + net.config()))
        for rel, (data, mode) in net.files().items():
            write(root, rel, data, mode)
        run(["systemctl", f"--root={root}", "enable", "systemd-networkd.service",
             "systemd-networkd-wait-online.service"])
    write(root, "/usr/local/bin/kdumpctl-vm-hook", HOOK, 0o755)
    write(root, "/etc/systemd/system/kdumpctl-vm-crash.service", CRASH_UNIT)
    write(root, "/etc/systemd/system/kdumpctl-vm-report.service", REPORT_UNIT)
    write(root, "/etc/systemd/system.conf.d/kdumpctl-vm.conf", SYSTEM_CONF)
    write(root, "/etc/fstab", "/dev/vda / ext4 rw 0 0\n")
    write(root, "/etc/hostname", "kdumpvm\n")
    write(root, "/etc/machine-id", "6b64756d7063746c2d70792d766d0001\n")
    (root / "var/lib/kdumpctl-vm").mkdir(parents=True, exist_ok=True)
    (root / "var/crash").mkdir(parents=True, exist_ok=True)
    # No login prompts: nobody logs in, and getty only costs boot time.
    for unit in ("getty@.service", "serial-getty@.service", "getty.target",
                 "systemd-timesyncd.service", "apt-daily.timer", "apt-daily-upgrade.timer",
                 "e2scrub_all.timer", "fstrim.timer"):
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    run(["systemctl", f"--root={root}", "enable", "kdumpctl-py.service",
         "kdumpctl-vm-crash.service", "kdumpctl-vm-report.service"])
    boot = root / "boot"
    boot.mkdir(exist_ok=True)
    shutil.copy(vmlinuz, boot / f"vmlinuz-{release}")
    shutil.copy(initrd, boot / f"initrd.img-{release}")


# -- the cycle --------------------------------------------------------------------------


def append(step: str) -> str:
    # no_timer_check (kept on the capture kernel's command line too): on a busy host TCG
    # runs the IO-APIC timer check too slowly and the kernel panics at boot.
    return " ".join([f"console={ARCH.console}", "root=/dev/vda", f"crashkernel={CRASHKERNEL}",
                     "panic=-1", f"{STEP_PARAM}={step}", "systemd.show_status=1",
                     "loglevel=4", "no_timer_check"])


def boot(spec: VmSpec, out: Path, name: str, timeout: float) -> tuple[int | None, str]:
    with Vm(spec, out / f"console-{name}.log", out / f"qemu-{name}.stderr") as vm:
        rc = vm.wait_exit(timeout)
        text = vm.console.text().decode(errors="replace")
    if rc is None:
        raise HarnessError(f"{name}: QEMU still running after {timeout:.0f} s\n"
                           + "\n".join(text.splitlines()[-40:]))
    return rc, text


def run_cycle(out: Path, net: Guest | None = None, report: bool = True) -> Result:
    """Build (or reuse) everything, boot twice, read the disk back; with `net`, the dump
    goes to the test's ssh or NFS server through the guest's NIC. Without `report`,
    run 1 alone, unchecked: the caller reads its console (a capture meant to fail)."""
    out.mkdir(parents=True, exist_ok=True)
    res = Result(out)
    cache = cache_root()
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        _cycle(res, cache, work, net, report)
    except HarnessError as e:
        res.error = str(e)
    (out / "result.json").write_text(json.dumps(res.as_dict(), indent=2, default=str) + "\n")
    return res


def _cycle(res: Result, cache: Path, work: Path, net: Guest | None,
           report: bool) -> None:
    out = res.out
    with Step(res, "apt"):
        mirrors = aptsources.find_mirrors(aptsources.machine_entries())
        apt = AptState(cache, SUITE, ARCH, mirrors)
        apt.update()
        kernel = apt.kernel()
        debs = apt.download([kernel.image], cache / "debs" / f"{SUITE}-{ARCH.debian}")
        kernel_dir = extract(debs[kernel.image], kernel.image, cache)
        busybox = busybox_dir(cache, apt)
    with Step(res, "root"):
        cached_root = build_root(cache, apt, mirrors)
    with Step(res, "wheel"):
        project = wheel.build(REPO, work)
        if project is None:
            raise HarnessError("no wheel")
    with Step(res, "image"):
        vmlinuz = kernel_dir / "boot" / f"vmlinuz-{kernel.release}"
        initrd = work / f"initrd.img-{kernel.release}"
        guest_initrd(kernel_dir, kernel.release, busybox, initrd,
                     net.modules if net else ())
        root = work / "root"
        run(["cp", "-a", "--reflink=auto", cached_root, root])
        customise(root, project, vmlinuz, initrd, kernel.release, net)
        image = work / "root.img"
        run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "kdumpvm-root", "-d", root, image,
             f"{DISK_MIB}M"])
        shutil.rmtree(root)
    nic = net.nic() if net else ()
    spec = VmSpec(arch=ARCH, kernel=vmlinuz, initrd=initrd, append=append("crash"),
                  disk=image, mem_mib=MEM_MIB, smp=1, nic=nic)
    try:
        with Step(res, "run1-crash-capture"):
            _, text = boot(spec, out, "run1", RUN1_TIMEOUT_S)
            res.console = text
        if not report:
            return
        _run1_checks(text)
        spec = VmSpec(arch=ARCH, kernel=vmlinuz, initrd=initrd, append=append("report"),
                      disk=image, mem_mib=MEM_MIB, smp=1, nic=nic)
        with Step(res, "run2-status"):
            _, text = boot(spec, out, "run2", RUN2_TIMEOUT_S)
            res.console += text
    finally:
        with Step(res, "read-back"):
            _read_back(res, image, work)


def _run1_checks(text: str) -> None:
    for needle, what in (("capture kernel loaded with", "kdumpctl-py.service loaded nothing"),
                         ("sysrq triggered crash", "kdumpctl-py test --yes did not crash"),
                         ("dump saved in", "the capture service saved no dump")):
        if needle not in text:
            raise HarnessError(f"run 1: {what} (no {needle!r} on the console)\n"
                               + "\n".join(text.splitlines()[-60:]))


def _read_back(res: Result, image: Path, work: Path) -> None:
    disk.check(image, res.out / "e2fsck.log")
    dest = work / "read-back"
    dest.mkdir(exist_ok=True)
    for src in ("/var/lib/kdumpctl-vm/status.json", "/var/crash", "/var/lib/kdumpctl-py",
                "/var/log/journal"):
        subprocess.run(["debugfs", "-R", f"rdump {src} {dest}", str(image)],
                       capture_output=True, check=False)
    status = dest / "status.json"
    if status.exists() and status.stat().st_size:
        res.status = json.loads(status.read_text())
    if (dest / "journal").is_dir():
        from kdumpctl_py.service.notify import DUMP_REPORT

        res.reports = journal(dest / "journal", f"MESSAGE_ID={DUMP_REPORT}")
    crash = dest / "crash"
    if crash.is_dir():
        res.dumps = sorted(str(p.relative_to(crash)) for p in crash.rglob("*") if p.is_file())
        shutil.copytree(crash, res.out / "crash", dirs_exist_ok=True)
    for name in ("kdumpctl-py", "journal"):  # the test's result and both kernels' journals
        if (dest / name).is_dir():
            shutil.copytree(dest / name, res.out / name, dirs_exist_ok=True)


def journal(directory: Path, *matches: str) -> list[dict[str, Any]]:
    """The entries of a guest's journal files (both kernels') that journalctl's
    matches select (FIELD=VALUE), oldest first."""
    r = subprocess.run(["journalctl", f"--directory={directory}", "--output=json", *matches],
                       capture_output=True, text=True, check=False)
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "systemd-cycle-out").resolve()
    res = run_cycle(out)
    print(json.dumps(res.as_dict(), indent=2, default=str))
    return 0 if res.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
