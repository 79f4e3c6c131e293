from __future__ import annotations

from kdumpctl_py.arch import get_arch
from kdumpctl_py.plan.capture_cmdline import CAPTURE_UNIT, capture_cmdline

ARM64, X86_64 = get_arch("aarch64"), get_arch("x86_64")


def test_removes_and_appends() -> None:
    line = ('BOOT_IMAGE=/vmlinuz root=UUID=1 ro quiet crashkernel=256M dyndbg="a b" '
            'nr_cpus=8 -- single')
    out = capture_cmdline(line, ARM64)
    words = out.split()
    assert words[:3] == ["root=UUID=1", "ro", 'dyndbg="a'] and 'b"' in words
    assert "quiet" not in words and not any(w.startswith("crashkernel=") for w in words)
    assert words.count("nr_cpus=1") == 1 and "nr_cpus=8" not in words
    assert "single" not in words and words[-1] == CAPTURE_UNIT
    assert "reset_devices" in words and "swiotlb=noforce" in words


def test_memmap_never_reaches_the_capture_kernel() -> None:
    """memmap=nn@ss (RAM added) or exactmap in the capture kernel would put it in the
    crashed kernel's memory; the map kexec hands over keeps the reserved regions."""
    out = capture_cmdline("root=/dev/vda memmap=exactmap memmap=2G@4G memmap=64K$0x1000000",
                          X86_64)
    assert "memmap" not in out and out.startswith("root=/dev/vda irqpoll")


def test_x86_and_extras() -> None:
    out = capture_cmdline("root=/dev/vda console=ttyS0", X86_64, remove=("console",),
                          append=("console=ttyS1",), unit=False)
    assert out.startswith("root=/dev/vda irqpoll reset_devices")
    assert "nokaslr" in out and out.endswith("console=ttyS1") and CAPTURE_UNIT not in out


def test_configuration_removes_after_the_defaults_and_appends_last() -> None:
    line = "root=/dev/vda systemd.unit=rescue.target quiet step=crash"
    out = capture_cmdline(line, X86_64, remove=("irqpoll", "step"),
                          append=("dyndbg=file a.c +p", "kdumpctl_py.test_id=T"))
    words = out.split()
    assert "irqpoll" not in words and not any(w.startswith("step=") for w in words)
    assert words.count(CAPTURE_UNIT) == 1 and "systemd.unit=rescue.target" not in words
    assert out.endswith('dyndbg="file a.c +p" kdumpctl_py.test_id=T')
    # A test id on the running kernel's line never leaks into the capture kernel's.
    assert "kdumpctl_py.test_id" not in capture_cmdline("kdumpctl_py.test_id=old", X86_64)


def test_a_network_target_starts_the_network() -> None:
    line = "root=/dev/vda systemd.wants=foo.service"
    assert capture_cmdline(line, X86_64).split()[-1] == \
        "systemd.unit=kdumpctl-py-capture.service"
    words = capture_cmdline(line, X86_64, network=True).split()
    assert words[-2:] == ["systemd.unit=kdumpctl-py-capture.service",
                          "systemd.wants=network-online.target"]
    assert "systemd.wants=foo.service" not in words


def test_the_capture_kernel_never_resumes_a_hibernation_image() -> None:
    """resume= would have the kernel or the initramfs restore an image over the memory
    being saved; rdinit= names a program of the system's initramfs, not the capture's."""
    line = ("root=/dev/vda resume=UUID=5 resume_offset=34816 rdinit=/sbin/x "
            "init=/lib/systemd/systemd")
    words = capture_cmdline(line, X86_64).split()
    assert "noresume" in words and "init=/lib/systemd/systemd" in words
    assert not any(w.startswith(("resume=", "resume_offset=", "rdinit=")) for w in words)
