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

Every program qemu-user starts pays its translation again, so what does not depend
on the architecture is kept out of it: dpkg reads each package through the host's
own dpkg-deb (proot runs a host ELF natively), the Python modules are byte-compiled
by the host's Python of the same version, and update-ca-certificates (hundreds of
small programs) waits for the first boot (firstboot.py), where a TCG guest keeps its
translations from one program to the next.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .costs import Costs
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
# Set aside too, for the host or the first boot to do (above): py3compile (absent, the
# python3-* postinsts skip it) and update-ca-certificates (true, its postinst and
# trigger call it unconditionally). dpkg runs with mmdebstrap's --force-unsafe-io
# (no fsync of each file: every system call crosses proot's ptrace).
DEFERRED = {"/bin/systemd-tmpfiles": "/bin/true", "/usr/bin/py3compile": None,
            "/usr/sbin/update-ca-certificates": "/bin/true"}
HOST = "/debs/host"  # the host's dpkg-deb, its loader and libraries (stage_dpkg_deb)
SECOND_STAGE = f"""\
set -e
export PATH={HOST}/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C \\
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
dpkg --force-depends --force-unsafe-io --install /debs/base-passwd_*.deb
dpkg --force-depends --force-unsafe-io --install /debs/base-files_*.deb
dpkg --force-depends --force-confold --force-unsafe-io --unpack /debs/*.deb
for path in {" ".join(DEFERRED)}; do dpkg-divert --local --rename --add "$path"; done
{"".join(f"ln -s {to} {path}{chr(10)}" for path, to in DEFERRED.items() if to)}\
dpkg --force-confold --force-unsafe-io --configure -a || true
left=$(dpkg-query -W -f '${{Package}} ${{Status}}\\n' | grep -v ' installed$' | cut -d' ' -f1)
[ "$left" = grub-efi-$(dpkg --print-architecture) ] || [ -z "$left" ] || {{
    echo "not configured: $left"; exit 1; }}
for path in {" ".join(DEFERRED)}; do
    rm -f "$path"; dpkg-divert --local --rename --remove "$path"
done
rm /usr/sbin/policy-rc.d
"""
# dpkg runs `dpkg-deb` from its PATH (--control, --fsys-tarfile): this one starts the
# host's through the host's loader, so each package's decompression runs natively.
DPKG_DEB_WRAPPER = f"""\
#!/bin/sh
exec {HOST}/lib/@LOADER@ --library-path {HOST}/lib {HOST}/dpkg-deb "$@"
"""


def host_arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def options() -> dict[str, str]:
    """What makes a foreign root differ from a native one, for the cache key."""
    return {"extract": "mmdebstrap --variant=extract", "second_stage": SECOND_STAGE,
            "dpkg_deb": DPKG_DEB_WRAPPER, "byte_compile": "host compileall"}


def build(root: Path, arch: str, suite: str, packages: Sequence[str], sources: Sequence[str],
          excludes: Sequence[str], debs: Path, costs: Costs) -> None:
    """Extract the packages into `root` and configure them under proot and qemu-user;
    `debs` is scratch space for the downloaded packages."""
    qemu = QEMU_USER.get(arch)
    if qemu is None or shutil.which(qemu) is None:
        raise HarnessError(f"no qemu-user binary for {arch}",
                           hint="apt-get install qemu-user-static (setup.sh does)")
    if shutil.which("proot") is None:
        raise HarnessError("proot not found", hint="apt-get install proot (setup.sh does)")
    debs.mkdir(parents=True, exist_ok=True)
    with costs.step("mmdebstrap-extract"):
        _extract(root, arch, suite, packages, sources, excludes, debs)
    (debs / "second-stage").write_text(SECOND_STAGE)
    stage_dpkg_deb(debs / HOST.removeprefix("/debs/"))
    with costs.step("second-stage"):
        run(["proot", "-q", qemu, "-r", root, "-b", f"{debs}:/debs", "-b", "/dev", "-b",
             "/proc", "-b", "/sys", "-w", "/", "/bin/sh", "/debs/second-stage"], timeout=7200)
    shutil.rmtree(debs)
    with costs.step("byte-compile"):
        byte_compile(root)


def _extract(root: Path, arch: str, suite: str, packages: Sequence[str],
             sources: Sequence[str], excludes: Sequence[str], debs: Path) -> None:
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


def stage_dpkg_deb(dest: Path) -> None:
    """The host's dpkg-deb, the libraries `ldd` names and its loader under `dest`, and
    a `dpkg-deb` in dest/bin that starts it (a plain tar stream: the same bytes as the
    root's own dpkg-deb would give)."""
    exe = shutil.which("dpkg-deb")
    if exe is None:
        raise HarnessError("dpkg-deb not found on the host")
    (dest / "lib").mkdir(parents=True)
    (dest / "bin").mkdir()
    shutil.copy(exe, dest / "dpkg-deb")
    loader = None
    for line in run(["ldd", exe]).stdout.splitlines():
        fields = line.split()
        if "=>" in fields and fields[2].startswith("/"):
            shutil.copy(fields[2], dest / "lib" / fields[0])
        elif fields and fields[0].startswith("/"):
            loader = Path(fields[0]).name
            shutil.copy(fields[0], dest / "lib" / loader)
    if loader is None:
        raise HarnessError(f"ldd named no loader for {exe}")
    wrapper = dest / "bin" / "dpkg-deb"
    wrapper.write_text(DPKG_DEB_WRAPPER.replace("@LOADER@", loader))
    wrapper.chmod(0o755)


def byte_compile(root: Path) -> None:
    """What the python3-* postinsts' py3compile would have done (set aside in the second
    stage), by the host's Python when it is the root's version: a .pyc depends on the
    Python version, not on the architecture. Otherwise the guest's Python compiles each
    module when it first imports it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not (root / "usr/lib" / version).is_dir():
        return
    for tree in ("usr/lib/python3/dist-packages", "usr/share/python3"):
        # compileall's status is not checked: a package's file that does not compile
        # (test data) is skipped, as py3compile skips it.
        run([sys.executable, "-m", "compileall", "-q", "-j", "0", "-s", root, "-p", "/",
             root / tree], check=False, timeout=1800)
