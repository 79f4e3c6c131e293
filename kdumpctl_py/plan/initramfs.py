"""kdumpctl-py's own capture initramfs: which generator, how compressed, and whether to build.

The capture kernel needs its initramfs only to mount the root file system: from
there systemd starts kdumpctl-py-capture.service (with kdumpctl-py and its
Python on the root), and udev loads any other driver, the dump target's or the
network's, from the root's /lib/modules. So, as Debian's kdump-tools does, the
capture initramfs is the system's own generator run with the system's own
configuration but only the modules this machine's root needs: initramfs-tools
with MODULES=dep (the system's is usually MODULES=most), or dracut --hostonly
where dracut is the generator. Also RESUME=none: a capture kernel must never
resume a hibernation image. It is compressed with the best method that both
the kernel unpacks (CONFIG_RD_*) and the system has a compressor for, because
the compressed copy sits in the crash reservation while it is unpacked.

It is built next to the kernel (bootfiles.OWN_INITRD), where `start` and
`estimate` find it, and built again when it is older than what it is made of:
the kernel, the system's initrd (rebuilt after a package or initramfs
configuration change), the generator's configuration or kdumpctl-py's, as
Fedora's kdumpctl rebuilds its own. Everything here is planned from a
SystemView; service/initramfs.py runs the generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdumpctl_py.facts.kconfig import parse_kconfig
from kdumpctl_py.plan.bootfiles import OWN_INITRD, find_kernel, own_initrd_path, system_initrd
from kdumpctl_py.plan.bootloader import find_tool

if TYPE_CHECKING:
    from kdumpctl_py.facts.view import SystemView

INITRAMFS_TOOLS_CONF = "/etc/initramfs-tools"
# Read last by mkinitramfs (conf.d in name order), so these win over the system's.
OVERRIDE_NAME = "zz-kdumpctl-py"
OVERRIDES = "MODULES=dep\nRESUME=none\n"
DRACUT_CONF = ("/etc/dracut.conf", "/etc/dracut.conf.d")
# Best first: the smallest compressed copy. initramfs-tools and dracut take the same
# names; xz at its default level (-6) needs an 8 MiB dictionary while unpacking.
COMPRESSIONS = (("xz", "CONFIG_RD_XZ"), ("lzma", "CONFIG_RD_LZMA"), ("zstd", "CONFIG_RD_ZSTD"),
                ("bzip2", "CONFIG_RD_BZIP2"), ("gzip", "CONFIG_RD_GZIP"),
                ("lz4", "CONFIG_RD_LZ4"), ("lzop", "CONFIG_RD_LZO"))


@dataclass(frozen=True)
class InitramfsPlan:
    release: str
    generator: str  # initramfs-tools or dracut
    tool: str  # mkinitramfs or dracut, as seen inside the root
    output: str
    compression: str
    why: str | None  # why it is to be built; None when it is up to date


def choose_generator(view: SystemView) -> tuple[str, str] | None:
    """(generator, its program) of the system, initramfs-tools before dracut; None if neither."""
    mkinitramfs = find_tool(view.root, "mkinitramfs")
    if mkinitramfs and view.path(f"{INITRAMFS_TOOLS_CONF}/initramfs.conf").is_file():
        return "initramfs-tools", mkinitramfs
    dracut = find_tool(view.root, "dracut")
    return ("dracut", dracut) if dracut else None


def kernel_config(view: SystemView, release: str) -> dict[str, str] | None:
    text = view.text(f"/boot/config-{release}")
    if text is not None:
        return parse_kconfig(text)
    return view.kernel_config if release == view.uname.release else None


def best_compression(config: dict[str, str] | None, have: set[str]) -> str:
    """The best method the kernel unpacks and the system has a compressor for; gzip when
    the kernel's configuration is unknown (every initrd-capable kernel takes it)."""
    if config is None:
        return "gzip"
    for name, option in COMPRESSIONS:
        if config.get(option) == "y" and name in have:
            return name
    return "gzip"


def compressors(view: SystemView) -> set[str]:
    return {name for name, _ in COMPRESSIONS if find_tool(view.root, name)}


def inputs(view: SystemView, release: str, generator: str) -> list[str]:
    """The files the capture initramfs is made from, and so must be newer than."""
    from kdumpctl_py.config.settings import DEFAULT_PATH

    paths = [f"/boot/{found[0]}" for found in (find_kernel(view, release),
                                               system_initrd(view, release)) if found]
    if generator == "initramfs-tools":
        conf = INITRAMFS_TOOLS_CONF
        paths += [f"{conf}/initramfs.conf", f"{conf}/modules",
                  *(f"{conf}/conf.d/{name}" for name in view.listdir(f"{conf}/conf.d"))]
    else:
        paths += [DRACUT_CONF[0],
                  *(f"{DRACUT_CONF[1]}/{name}" for name in view.listdir(DRACUT_CONF[1]))]
    return [*paths, DEFAULT_PATH]


def why_build(view: SystemView, release: str, generator: str) -> str | None:
    """Why our initramfs for `release` is to be built; None when it is newer than its inputs
    (or, in a snapshot that names it but keeps no copy, when that cannot be told)."""
    if OWN_INITRD.format(release) not in view.boot_files:
        return "not built yet"
    built = view.mtime(own_initrd_path(release))
    if built is None:
        return None
    for path in inputs(view, release, generator):
        changed = view.mtime(path)
        if changed is not None and changed > built:
            return f"{path} changed since it was built"
    return None


def plan_initramfs(view: SystemView, release: str | None = None) -> InitramfsPlan | None:
    """How to build the capture initramfs for `release` (the running one by default);
    None when the system has no initramfs generator kdumpctl-py knows."""
    release = release or view.uname.release
    generator = choose_generator(view)
    if generator is None:
        return None
    compression = best_compression(kernel_config(view, release), compressors(view))
    return InitramfsPlan(release, generator[0], generator[1], own_initrd_path(release),
                         compression, why_build(view, release, generator[0]))


def command(plan: InitramfsPlan, conf_dir: str, output: str) -> tuple[str, ...]:
    """The generator's command line, writing to `output`; initramfs-tools reads the
    configuration copied to `conf_dir` (the system's plus OVERRIDES in conf.d)."""
    if plan.generator == "initramfs-tools":
        return (plan.tool, "-d", conf_dir, "-c", plan.compression, "-o", output, plan.release)
    return (plan.tool, "--force", "--hostonly", "--hostonly-mode", "strict",
            "--omit", "plymouth resume", "--compress", plan.compression, output, plan.release)
