"""VM tier: the installed-system cycle (tests/vm/installed_cycle.py) on x86_64 bookworm.

UEFI firmware, GRUB and Debian's own kernel and initramfs, with kdumpctl-py set up
as the README tells a new user: `reset-crashkernel` through update-grub, a reboot
through GRUB, `systemctl enable --now kdumpctl-py`, `kdumpctl-py test --yes`; the
capture kernel boots through Debian's initramfs into kdumpctl-py-capture.service.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from kdumpctl_py.plan.bootfiles import OWN_INITRD
from tests.vm import installed_cycle

OWN = OWN_INITRD.split("{}")[0]  # kdumpctl-py-initrd-, the release follows


@pytest.mark.vm
def test_installed_x86_64(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("installed-x86_64")
    handler = logging.FileHandler(out / "installed-cycle.log")
    logging.getLogger("systemd-cycle").addHandler(handler)
    logging.getLogger("systemd-cycle").setLevel(logging.INFO)
    try:
        res = installed_cycle.run_cycle(out, "x86_64")
    finally:
        logging.getLogger("systemd-cycle").removeHandler(handler)
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
    assert freed and int(freed.group(1)) == -(-own // 4096) * 4, (freed, own)
    assert "systemd.unit=kdumpctl-py-capture.service" in capture
    assert "dump saved in" in capture
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
