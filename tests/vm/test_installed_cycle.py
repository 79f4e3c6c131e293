"""VM tier: the installed-system cycle (tests/vm/installed_cycle.py) on bookworm, x86_64
and arm64 (on ACPI, as servers boot: qemu-efi-aarch64 on `-machine virt,acpi=on`).

UEFI firmware, GRUB and Debian's own kernel and initramfs, with kdumpctl-py set up
as the README tells a new user: `reset-crashkernel` through update-grub, a reboot
through GRUB, `systemctl enable --now kdumpctl-py`, `kdumpctl-py test --yes`; the
capture kernel boots through Debian's initramfs into kdumpctl-py-capture.service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kdumpctl_py.plan.bootfiles import OWN_INITRD
from tests.vm import installed_cycle
from tests.vm.cycles import assert_capture_memory_from_efi, assert_efi_acpi_boot

OWN = OWN_INITRD.split("{}")[0]  # kdumpctl-py-initrd-, the release follows
# The arm64 root is configured under proot and gets its initramfs at a first boot
# under TCG with the installer's "targeted" driver policy (MODULES=dep), which makes
# it cheap enough for the CI (tests/vm/README.md).
ARCHES = ["x86_64", "arm64"]


@pytest.mark.vm
@pytest.mark.parametrize("arch", ARCHES)
def test_installed(arch: str,
                   installed_systems: Callable[[str], installed_cycle.Result]) -> None:
    res = installed_systems(arch)  # installed-cycle.log in res.out has its log
    out = res.out
    print(json.dumps(res.timings))
    assert res.error is None, res.error
    # reset-crashkernel wrote crashkernel= into /etc/default/grub and update-grub into
    # grub.cfg, and the second boot came through GRUB with it.
    grub = (out / "grub").read_text()
    value = re.search(r'^GRUB_CMDLINE_LINUX=".*\bcrashkernel=(\S+?)[" ]', grub, re.M)
    assert value, grub
    assert f"crashkernel={value.group(1)}" in (out / "grub.cfg").read_text()
    crash_boot = (out / "console-crash.log").read_text(errors="replace")
    cmdline = re.search(r"KDUMPCTL-VM: cmdline: (.*)", crash_boot)
    assert cmdline and f"crashkernel={value.group(1)}" in cmdline.group(1).split()
    # The capture kernel came up through kdumpctl-py's own initramfs (initramfs-tools,
    # MODULES=dep, xz: built by `kdumpctl-py install`) and the root's systemd: the memory
    # the capture kernel frees after unpacking is that file's, in whole pages.
    capture = crash_boot.split("sysrq triggered crash", 1)[1]
    assert "Loading, please wait..." in capture
    own = own_initrd_size(out)
    freed = re.search(r"Freeing initrd memory: (\d+)K", capture)
    # x86's free_initrd_mem rounds the end up to a page; arm64 has the generic
    # free_reserved_area, which frees only the pages the (page-aligned) initrd fills.
    pages = -(-own // 4096) if arch == "x86_64" else own // 4096
    assert freed and int(freed.group(1)) == pages * 4, (freed, own)
    assert "systemd.unit=kdumpctl-py-capture.service" in capture
    assert "dump saved in" in capture
    if arch == "arm64":
        # The capture DTB made from the EFI stub's tree led the capture kernel to its
        # ACPI tables and EFI memory map.
        assert_efi_acpi_boot(capture)
        assert_capture_memory_from_efi(capture, (out / "iomem").read_text())
    st = res.status
    assert st is not None, "the report boot wrote no status.json"
    assert st["operational"] and st["loaded"], st["reason"]
    dump = st["newest_dump"]
    assert dump and dump["complete"] and dump["bytes"] > 0
    assert f"{dump['name']}/vmcore" in res.dumps
    assert st["last_test"] and ": dump created, /var/crash/" + dump["name"] in st["last_test"]
    assert res.report is not None
    assert "sysrq triggered crash" in (res.report["panic_message"] or "")


def own_initrd_size(out: Path) -> int:
    """The size of kdumpctl-py's capture initramfs, from the install boot's `ls -l /boot`."""
    install = (out / "console-install.log").read_text(errors="replace")
    assert "built /boot/" + OWN in install
    sizes = re.findall(r"\s(\d+) \w{3} +\d+ +[\d:]+ " + re.escape(OWN),
                       install)
    assert sizes, "no capture initramfs in the install boot's /boot"
    return int(sizes[-1])
