"""Debian's own initramfs for a root configured under proot, made in a TCG guest.

A foreign root (foreignroot.py) comes out of proot with its kernel but no
initramfs. update-initramfs there would pay qemu-user's start-up (its dynamic
loader and libc translated again) for each of the thousands of programs
mkinitramfs runs with initramfs-tools' default MODULES=most; a TCG guest keeps its
translations across processes. So the root's own kernel boots once, straight from
QEMU, with a busybox initramfs that mounts the root read-write and runs
`update-initramfs -c -k all` in it by chroot, as an installer does in its target;
the host reads the initramfs back with debugfs (initramfs-tools 0.142 keeps no other
state for it).

Which drivers that initramfs gets is the question Debian's installer asks
(base-installer/initramfs-tools/driver-policy): "generic", initramfs-tools' default
MODULES=most, over a thousand modules copied one program at a time (about 1300 CPU s
under TCG), or "targeted", which the installer writes as MODULES=dep in
/etc/initramfs-tools/conf.d/driver-policy: only what mounts this system's root,
tens of modules. mkinitramfs finds those from the device under / in sysfs, so the
first boot runs on the installed system's own machine: the firmware (arm64:
`virt,acpi=on`) starting the kernel's EFI stub, the disk on virtio-blk-pci, as its
every later boot through GRUB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import disk, efidisk, rootinitrd, uefi
from .config import Arch
from .errors import HarnessError
from .proc import run
from .qemu import Vm

# The virtio disk on PCI, and ext4, which Debian's generic arm64 kernel builds as modules.
MODULES = ("virtio_pci", "crc32c_generic", "ext4")
# The installer's two answers, and what each makes of initramfs-tools' configuration.
TARGETED, GENERIC = "targeted", "generic"
POLICY_FILE = "/etc/initramfs-tools/conf.d/driver-policy"
POLICY_TEXT = {
    TARGETED: "# targeted: only the drivers this system needs, as the installer writes it\n"
              "MODULES=dep\n",
    GENERIC: None,  # initramfs.conf's own MODULES=most
}
DONE = "initramfs built"
# update-ca-certificates fills CERTS (links and the bundle), read back with the initramfs.
CERTS_TOOL, CERTS = "/usr/sbin/update-ca-certificates", "/etc/ssl/certs"
# After rootinitrd.PROLOGUE: the root read-write; in it update-ca-certificates, which the
# second stage left for here (foreignroot.py), and update-initramfs; power off.
INIT = f"""\
$bb mount -t ext4 /dev/vda /root || $bb poweroff -f
$bb mount -t proc proc /root/proc
$bb mount -t sysfs sysfs /root/sys
$bb mount -t devtmpfs devtmpfs /root/dev
say() {{ echo "KDUMPCTL-VM: at $($bb cut -d' ' -f1 /proc/uptime) s: $*"; }}
in_root() {{ $bb chroot /root /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }}
say "root mounted"
{{ [ ! -e /root{CERTS_TOOL} ] || in_root update-ca-certificates; }} &&
    say "update-ca-certificates done" &&
    in_root update-initramfs -c -k all && say "{DONE}"
$bb umount /root/proc /root/sys /root/dev
$bb mount -o remount,ro /root
$bb sync
$bb poweroff -f
"""
MEM_MIB = 2048
SMP = 1  # mkinitramfs runs one program at a time: less CPU than 2 (tests/vm/README.md)
DISK_MIB = 3072
TIMEOUT_S = 3600


def options(policy: str = TARGETED) -> dict[str, str]:
    """What this step adds to the root, for its cache key."""
    return {"first_boot_init": rootinitrd.PROLOGUE + INIT, "read_back": CERTS,
            "modules": " ".join(MODULES), "machine": "uefi virtio-blk-pci",
            "driver_policy": POLICY_TEXT[policy] or ""}


def release(root: Path) -> str | None:
    """The release of the root's one kernel, if it has one."""
    kernels = sorted(p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*"))
    if len(kernels) > 1:
        raise HarnessError(f"more than one kernel in the root's /boot: {kernels}")
    return kernels[0] if kernels else None


def make_initramfs(root: Path, arch: Arch, busybox: Path, work: Path,
                   policy: str = TARGETED) -> None:
    """Boot `root`'s kernel once so that its update-initramfs makes /boot/initrd.img-REL
    with the installer's driver `policy` (and update-ca-certificates /etc/ssl/certs);
    both are read back into `root`."""
    rel = release(root)
    if rel is None:
        raise HarnessError("a foreign root needs a kernel: its first boot finishes it")
    text = POLICY_TEXT[policy]
    if text is not None:
        (root / POLICY_FILE.lstrip("/")).write_text(text)
    work.mkdir(parents=True, exist_ok=True)
    initrd, image = work / "initrd.img", work / "root.img"
    rootinitrd.write(arch, root, rel, busybox, INIT, initrd, MODULES)
    efidisk.make_root(image, root, DISK_MIB)
    command = [*uefi.argv(arch, image, MEM_MIB, SMP),
               "-kernel", str(root / "boot" / f"vmlinuz-{rel}"), "-initrd", str(initrd),
               "-append", f"console={arch.console} panic=-1"]
    with Vm(command, work / "console.log", work / "qemu.stderr") as vm:
        rc = vm.wait_exit(TIMEOUT_S)
        text = vm.console.text().decode(errors="replace")
    if rc is None or DONE not in text:
        tail = "\n".join(text.splitlines()[-40:])
        raise HarnessError(f"the first boot made no initramfs (console: {work}/console.log)"
                           f"\n{tail}")
    disk.check(image, work / "e2fsck.log")
    made = f"/boot/initrd.img-{rel}"
    run(["debugfs", "-R", f"dump -p {made} {root}{made}", image])
    if not (root / made.lstrip("/")).is_file():
        raise HarnessError(f"the first boot left no {made}")
    if (root / CERTS_TOOL.lstrip("/")).exists():
        certs = root / CERTS.lstrip("/")
        shutil.rmtree(certs, ignore_errors=True)
        run(["debugfs", "-R", f"rdump {CERTS} {certs.parent}", image])
        if not (certs / "ca-certificates.crt").is_file():
            raise HarnessError(f"the first boot left no {CERTS}/ca-certificates.crt")
    # The console, with the time each step ended, stays with the root.
    shutil.copy(work / "console.log", work.parent / "first-boot.log")
    shutil.rmtree(work)
