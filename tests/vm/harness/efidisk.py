"""A bootable UEFI disk image as an installer leaves it, built without mounts or loop devices.

GPT with an EFI system partition (FAT, made by mkfs.vfat and filled with mtools) and
an ext4 root (`mke2fs -d`), assembled with sfdisk and dd. GRUB's EFI image is made
by the host's grub-mkimage from the guest's own module directory (grub-mkimage
writes any target from its modules), with the modules copied to /boot/grub/TARGET
as grub-install does, so the guest's update-grub and insmod work as on a real
installation. It is put at the removable-media path (EFI/BOOT/BOOT*.EFI), which
firmware boots with no boot entries in its variables.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .proc import run

MIB = 1 << 20
SECTOR = 512
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
# The Discoverable Partitions Specification's root types, so the partition says what it is.
ROOT_TYPES = {"amd64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
              "arm64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"}
ROOT_LABEL = "kdumpvm-root"
ESP_MIB = 64


@dataclass(frozen=True)
class Grub:
    """GRUB's names for one architecture."""

    target: str  # grub-mkimage -O and the module directory
    removable: str  # the file firmware boots from a disk with no boot entries


GRUB = {"amd64": Grub("x86_64-efi", "BOOTX64.EFI"),
        "arm64": Grub("arm64-efi", "BOOTAA64.EFI")}
# What the core image needs to find and read /boot/grub on the root; the rest is
# loaded from /boot/grub/TARGET by grub.cfg's insmod lines.
CORE_MODULES = ("part_gpt", "fat", "ext2", "search", "search_label", "normal", "configfile",
                "linux", "echo", "test", "gzio", "efi_gop")
EARLY_CONFIG = f"""\
search --no-floppy --label {ROOT_LABEL} --set=root
set prefix=($root)/boot/grub
"""


def grub_config(release: str, cmdline: str) -> str:
    """A first grub.cfg, until the guest's own update-grub writes one."""
    return f"""\
set timeout=0
search --no-floppy --label {ROOT_LABEL} --set=root
linux /boot/vmlinuz-{release} root=LABEL={ROOT_LABEL} ro {cmdline}
initrd /boot/initrd.img-{release}
boot
"""


def install_grub(root: Path, arch: str, work: Path, release: str, cmdline: str) -> Path:
    """Put GRUB's modules and a grub.cfg under root/boot/grub; return the EFI image."""
    grub = GRUB[arch]
    modules = root / "usr/lib/grub" / grub.target
    dest = root / "boot/grub" / grub.target
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(modules, dest)
    cfg = root / "boot/grub/grub.cfg"
    cfg.unlink(missing_ok=True)  # root may be a hard-linked copy
    cfg.write_text(grub_config(release, cmdline))
    early = work / "grub-early.cfg"
    early.write_text(EARLY_CONFIG)
    image = work / grub.removable
    run(["grub-mkimage", "-O", grub.target, "-d", modules, "-c", early, "-p", "/boot/grub",
         "-o", image, *CORE_MODULES])
    return image


def make_esp(image: Path, efi_binary: Path, name: str) -> None:
    """A FAT ESP of ESP_MIB holding EFI/BOOT/`name`."""
    image.unlink(missing_ok=True)
    run(["mkfs.vfat", "-n", "ESP", "-C", image, str(ESP_MIB * 1024)])
    run(["mmd", "-i", image, "::/EFI", "::/EFI/BOOT"])
    run(["mcopy", "-i", image, efi_binary, f"::/EFI/BOOT/{name}"])


def make_root(image: Path, tree: Path, size_mib: int) -> None:
    image.unlink(missing_ok=True)
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-d", tree, image,
         f"{size_mib}M"])


def sfdisk_script(arch: str, esp_mib: int, root_mib: int) -> str:
    """GPT: the ESP from 1 MiB, the root right after it."""
    esp_start = MIB // SECTOR
    root_start = esp_start + esp_mib * MIB // SECTOR
    return (f"label: gpt\n"
            f"start={esp_start}, size={esp_mib * MIB // SECTOR}, type={ESP_TYPE}, name=ESP\n"
            f"start={root_start}, size={root_mib * MIB // SECTOR}, "
            f"type={ROOT_TYPES[arch]}, name=root\n")


def assemble(disk: Path, arch: str, esp: Path, root: Path) -> None:
    """One sparse disk image: GPT, the ESP, the root, room for the backup GPT."""
    esp_mib, root_mib = esp.stat().st_size // MIB, root.stat().st_size // MIB
    disk.unlink(missing_ok=True)
    with open(disk, "wb") as f:
        f.truncate((1 + esp_mib + root_mib + 1) * MIB)
    script = disk.with_suffix(".sfdisk")
    script.write_text(sfdisk_script(arch, esp_mib, root_mib))
    run(["sh", "-c", 'exec sfdisk --quiet "$1" < "$2"', "sfdisk", disk, script])
    for part, seek in ((esp, 1), (root, 1 + esp_mib)):
        run(["dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={seek}", "conv=notrunc,sparse",
             "status=none"])


def extract_root(disk: Path, esp_mib: int, root: Path) -> None:
    """The root partition as its own file, for e2fsck and debugfs."""
    run(["dd", f"if={disk}", f"of={root}", "bs=1M", f"skip={1 + esp_mib}", "conv=sparse",
         "status=none"])
