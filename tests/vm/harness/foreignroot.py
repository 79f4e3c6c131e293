"""A configured Debian root of another architecture, on a host without binfmt_misc.

mmdebstrap configures a foreign root by running its maintainer scripts through
binfmt_misc and qemu-user; a container often has no binfmt_misc, and then it cannot.
Here mmdebstrap only resolves, downloads and extracts the packages (its `extract`
variant, with the same essential set and includes as the native `essential` one),
and the second stage debootstrap would run in the target runs under proot, which
starts every foreign executable through qemu-user itself (`proot -q`): dpkg unpacks
every package into its database and configures them all, maintainer scripts, kernel
postinst hooks (update-initramfs) and triggers included. Nothing is mounted: proot
binds the host's /dev, /proc and /sys by path translation in its own process tree.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from .errors import HarnessError
from .proc import run

QEMU_USER = {"arm64": "qemu-aarch64-static", "amd64": "qemu-x86_64-static"}

# /usr merged as mmdebstrap's native runs have it (its merged-usr hook: the directory
# links, and a placeholder usr-is-merged that the real one replaces).
MERGED_USR_HOOK = "/usr/share/mmdebstrap/hooks/merged-usr/setup00.sh"
# debootstrap's second stage in short: base-passwd first (its preinst writes the
# /etc/passwd and /etc/group every later script needs), base-files next, then every
# package unpacked and all configured. No service is started (policy-rc.d).
# systemd-tmpfiles is set aside meanwhile: proot aborts on its readlinkat() of an
# empty path (proot-me/proot#366); systemd-tmpfiles-setup.service runs it at boot.
# grub-efi-ARCH's postinst is the one left unconfigured: Debian 12's proot 5.1 does
# not translate statx(), so its `stat` of a temporary file fails. What that script
# would do here (grub-install, update-grub) the harness does (efidisk.install_grub)
# and the guest's own update-grub does when reset-crashkernel runs it.
SECOND_STAGE = """\
set -e
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive \\
    DEBCONF_NONINTERACTIVE_SEEN=true
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
dpkg --force-depends --install /debs/base-passwd_*.deb
dpkg --force-depends --install /debs/base-files_*.deb
dpkg --force-depends --force-confold --unpack /debs/*.deb
dpkg-divert --local --rename --add /bin/systemd-tmpfiles
ln -s /bin/true /bin/systemd-tmpfiles
dpkg --force-confold --configure -a || true
left=$(dpkg-query -W -f '${Package} ${Status}\\n' | grep -v ' installed$' | cut -d' ' -f1)
[ "$left" = grub-efi-$(dpkg --print-architecture) ] || [ -z "$left" ] || {
    echo "not configured: $left"; exit 1; }
rm /bin/systemd-tmpfiles
dpkg-divert --local --rename --remove /bin/systemd-tmpfiles
rm /usr/sbin/policy-rc.d
"""


def host_arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def options() -> dict[str, str]:
    """What makes a foreign root differ from a native one, for the cache key."""
    return {"extract": "mmdebstrap --variant=extract", "second_stage": SECOND_STAGE}


def build(root: Path, arch: str, suite: str, packages: Sequence[str], sources: Sequence[str],
          excludes: Sequence[str], debs: Path) -> None:
    """Extract the packages into `root` and configure them under proot and qemu-user;
    `debs` is scratch space for the downloaded packages."""
    qemu = QEMU_USER.get(arch)
    if qemu is None or shutil.which(qemu) is None:
        raise HarnessError(f"no qemu-user binary for {arch}",
                           hint="apt-get install qemu-user-static (setup.sh does)")
    if shutil.which("proot") is None:
        raise HarnessError("proot not found", hint="apt-get install proot (setup.sh does)")
    debs.mkdir(parents=True, exist_ok=True)
    run(["mmdebstrap", "--mode=root", "--variant=extract", "--skip=download/empty", "--quiet",
         f"--setup-hook={MERGED_USR_HOOK}", "--include=?essential",
         "--include=usr-is-merged",
         f"--include={','.join(packages)}",
         *[f"--dpkgopt=path-exclude={p}" for p in excludes],
         f'--extract-hook=cp "$1"/var/cache/apt/archives/*.deb {shlex.quote(str(debs))}/',
         f"--architectures={arch}", suite, root, *sources], timeout=3600)
    # The extraction ignored dpkg's path-exclude; the second stage's dpkg would not
    # remove what it excludes, so it goes now.
    for pattern in excludes:
        for path in root.glob(pattern.lstrip("/")):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    (debs / "second-stage").write_text(SECOND_STAGE)
    run(["proot", "-q", qemu, "-r", root, "-b", f"{debs}:/debs", "-b", "/dev", "-b", "/proc",
         "-b", "/sys", "-w", "/", "/bin/sh", "/debs/second-stage"], timeout=7200)
    shutil.rmtree(debs)
