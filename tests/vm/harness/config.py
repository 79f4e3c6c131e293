"""Architectures and Debian suites as frozen data: everything that differs per arch or suite."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    """How to build and boot a guest of one architecture."""

    name: str  # the --arch spelling
    debian: str  # Debian's architecture name
    triplet: str  # multiarch tuple, for library paths
    qemu: str  # QEMU system emulator
    machine: tuple[str, ...]  # machine and CPU options
    console: str  # serial console device in the guest
    disk_device: str  # QEMU device model for the virtio disk
    # Modules to insmod, in this order, unless the kernel has them built in.
    virtio_modules: tuple[str, ...]
    # kexec-tools options: x86_64 uses kexec_file_load (-s), arm64 Debian kernels lack it.
    kexec_tools_args: tuple[str, ...]
    # Added to the capture kernel's command line besides the common kdump additions.
    capture_extra: tuple[str, ...]
    elf_machine: int
    # The kernel metapackage; Debian has a cloud flavour for amd64 and arm64 only.
    flavour: str = "cloud-"
    # The suite a guest is built from when --suite is not given (riscv64 is a
    # release architecture from trixie on).
    default_suite: str = "bookworm"
    # Where kexec-tools comes from when the guest's suite has none for this arch.
    kexec_tools_suite: str | None = None

    @property
    def kernel_metapackage(self) -> str:
        return f"linux-image-{self.flavour}{self.debian}"


ARCHES: dict[str, Arch] = {
    "arm64": Arch(
        name="arm64",
        debian="arm64",
        triplet="aarch64-linux-gnu",
        qemu="qemu-system-aarch64",
        machine=("-machine", "virt", "-cpu", "cortex-a57"),
        console="ttyAMA0",
        disk_device="virtio-blk-device",
        virtio_modules=("virtio_ring", "virtio", "virtio_mmio", "virtio_blk"),
        kexec_tools_args=(),
        capture_extra=(),
        elf_machine=183,
    ),
    "x86_64": Arch(
        name="x86_64",
        debian="amd64",
        triplet="x86_64-linux-gnu",
        qemu="qemu-system-x86_64",
        machine=("-machine", "pc"),
        console="ttyS0",
        disk_device="virtio-blk-pci",
        virtio_modules=("virtio_ring", "virtio", "virtio_pci", "virtio_blk"),
        kexec_tools_args=("-s",),
        capture_extra=("irqpoll",),
        elf_machine=62,
    ),
    # OpenSBI (QEMU's own, qemu-system-data) starts the kernel in S-mode; virt's
    # default CPU has Sv57, which the kernel takes unless told no5lvl or no4lvl.
    "riscv64": Arch(
        name="riscv64",
        debian="riscv64",
        triplet="riscv64-linux-gnu",
        qemu="qemu-system-riscv64",
        machine=("-machine", "virt", "-bios", "default"),
        console="ttyS0",
        disk_device="virtio-blk-device",
        # Debian's riscv64 kernel has ext4 as a module too; its checksums need crc32c.
        virtio_modules=("virtio_ring", "virtio", "virtio_mmio", "virtio_blk",
                        "crc32c_generic", "ext4"),
        kexec_tools_args=(),
        capture_extra=(),
        elf_machine=243,
        flavour="",
        default_suite="trixie",
        kexec_tools_suite="forky",
    ),
}


@dataclass(frozen=True)
class Suite:
    """A Debian release and the interpreter it ships."""

    name: str
    python: str  # e.g. "3.11"

    def package_roots(self) -> tuple[str, ...]:
        """Packages the guest needs; apt resolves their dependency closure."""
        return (
            "busybox-static",
            f"python{self.python}-minimal",
            f"libpython{self.python}-stdlib",
            "python3-libfdt",
            "python3-numpy",
            "python3-pyelftools",
        )

    # Wanted when the suite has them; a suite without them still makes a guest
    # (trixie builds no kexec-tools for riscv64).
    optional_roots: tuple[str, ...] = ("python3-zstandard", "kexec-tools")


SUITES: dict[str, Suite] = {
    "bookworm": Suite(name="bookworm", python="3.11"),
    "trixie": Suite(name="trixie", python="3.13"),
}

# Packages that dependency closures drag in for dpkg, maintainer scripts, PAM,
# udev or initramfs-tools: a busybox initramfs runs none of that. The ELF check in
# guestroot.py fails the build if a kept binary needs a library from one of them.
EXCLUDED_PACKAGES: frozenset[str] = frozenset(
    {
        "adduser", "base-files", "base-passwd", "coreutils", "cpio", "debconf",
        "debianutils", "dpkg", "init-system-helpers", "initramfs-tools",
        "initramfs-tools-core", "klibc-utils", "kmod", "libacl1", "libapparmor1",
        "libattr1", "libaudit-common", "libaudit1", "libblkid1", "libcap-ng0",
        "libcap2", "libext2fs2", "libext2fs2t64",
        "libgmp10", "libklibc", "libkmod2", "libmd0", "libpam-modules",
        "libpam-modules-bin", "libpam-runtime", "libpam0g", "libpcre2-8-0",
        "libselinux1", "libsemanage-common", "libsemanage2", "libsepol2",
        "libsystemd-shared", "libsystemd0", "libudev1", "linux-base", "logsave",
        "login", "login.defs", "passwd", "perl-base", "sensible-utils",
        "systemd", "systemd-dev", "tar", "udev", "usr-is-merged", "usrmerge",
    }
)

# Guest defaults. Measured on a 2-core TCG host (see tests/vm/README.md): the
# capture kernel unpacks the whole initramfs (Python, numpy) into its own memory.
DEFAULT_MEM_MIB = 1024
DEFAULT_SMP = 2
DEFAULT_CRASHKERNEL = "256M"
