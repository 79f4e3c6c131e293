from __future__ import annotations

from kdumpctl_py.plan.capture_cmdline import CAPTURE_UNIT, capture_cmdline


def test_removes_and_appends() -> None:
    line = ('BOOT_IMAGE=/vmlinuz root=UUID=1 ro quiet crashkernel=256M dyndbg="a b" '
            'nr_cpus=8 -- single')
    out = capture_cmdline(line, "aarch64")
    words = out.split()
    assert words[:3] == ["root=UUID=1", "ro", 'dyndbg="a'] and 'b"' in words
    assert "quiet" not in words and not any(w.startswith("crashkernel=") for w in words)
    assert words.count("nr_cpus=1") == 1 and "nr_cpus=8" not in words
    assert "single" not in words and words[-1] == CAPTURE_UNIT
    assert "reset_devices" in words and "swiotlb=noforce" in words


def test_x86_and_extras() -> None:
    out = capture_cmdline("root=/dev/vda console=ttyS0", "x86_64", remove=("console",),
                          append=("console=ttyS1",), unit=False)
    assert out.startswith("root=/dev/vda irqpoll reset_devices")
    assert "nokaslr" in out and out.endswith("console=ttyS1") and CAPTURE_UNIT not in out
