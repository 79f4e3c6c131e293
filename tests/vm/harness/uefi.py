"""Booting through UEFI firmware from Debian's packages (ovmf, qemu-efi-aarch64).

arm64 runs `-machine virt,acpi=on`: the firmware hands the kernel ACPI tables and
no device tree, as on servers, so the kernel's EFI stub makes the small tree
(/chosen with `linux,uefi-*`) that kdumpctl-py then builds the capture DTB from.
A whole disk boots through the firmware with virtio-blk on PCI, which both drive.
"""

from __future__ import annotations

from pathlib import Path

from .config import Arch
from .errors import HarnessError

FIRMWARE = {"x86_64": Path("/usr/share/ovmf/OVMF.fd"),
            "arm64": Path("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")}
PACKAGES = {"x86_64": "ovmf", "arm64": "qemu-efi-aarch64"}
MACHINE = {"x86_64": ("-machine", "pc"),
           "arm64": ("-machine", "virt,acpi=on", "-cpu", "cortex-a57")}


def machine(arch: Arch) -> list[str]:
    """The machine options and firmware for a UEFI boot (with -kernel, the firmware
    starts the kernel's EFI stub, as GRUB would)."""
    firmware = FIRMWARE[arch.name]
    if not firmware.exists():
        raise HarnessError(f"no UEFI firmware at {firmware}",
                           hint=f"apt-get install {PACKAGES[arch.name]} (setup.sh does)")
    return [*MACHINE[arch.name], "-bios", str(firmware)]


def argv(arch: Arch, disk: Path, mem_mib: int, smp: int) -> list[str]:
    """QEMU under TCG booting `disk` through the firmware, console on stdio, no network."""
    return [arch.qemu, *machine(arch), "-accel", "tcg",
            "-m", str(mem_mib), "-smp", str(smp),
            "-drive", f"file={disk},format=raw,if=none,id=disk",
            "-device", "virtio-blk-pci,drive=disk",
            "-nographic", "-no-reboot", "-nic", "none", "-monitor", "none",
            "-serial", "stdio"]
