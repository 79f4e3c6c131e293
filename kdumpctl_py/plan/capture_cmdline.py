"""The capture kernel's command line: the running one, minus what breaks a kdump boot, plus
what a small, single-CPU capture kernel needs (the architecture's `capture_options`), then
the configuration's cmdline_remove and cmdline_append."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdumpctl_py.config.model import is_network
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.cmdline import split_cmdline

if TYPE_CHECKING:
    from kdumpctl_py.arch import Arch
    from kdumpctl_py.config.model import Config
    from kdumpctl_py.facts.view import SystemView

# Parameters whose every instance is dropped: they reserve or size memory the
# capture kernel does not have, or silence the console we need to read. memmap= too:
# x86's memmap=nn@ss adds RAM and memmap=exactmap replaces the map, so the capture kernel
# would run in the crashed kernel's memory, overwriting the dump before it is saved. Its
# reserved and ACPI forms reach the capture kernel in the map kexec hands over (the
# reserved and ACPI ranges of /proc/iomem); a persistent-memory one (nn!ss) it needs not,
# and the dump holds no such memory (not System RAM). resume= and resume_offset=: where a
# hibernation image would be read from (noresume, a capture option, says not to). rdinit=:
# the capture initramfs is the generator's own, started by its /init.
REMOVE = (
    "crashkernel", "hugepages", "hugepagesz", "default_hugepagesz", "slub_debug", "quiet",
    "log_buf_len", "swiotlb", "cma", "hugetlb_cma", "ignition.firstboot", "BOOT_IMAGE",
    "initrd", "kexec_jump_back_entry", "kho", "nr_cpus", "maxcpus", "panic",
    "systemd.unit", "systemd.wants", "kdumpctl_py.test_id", "memmap", "resume",
    "resume_offset", "rdinit",
)
CAPTURE_UNIT = "systemd.unit=kdumpctl-py-capture.service"
# With a network target the capture boot also starts the network: systemd's debug
# generator makes the unit named by systemd.unit= want it.
NETWORK_WANTS = "systemd.wants=network-online.target"


def _quote(word: str) -> str:
    key, sep, value = word.partition("=")
    return f'{key}{sep}"{value}"' if " " in value else word


def capture_cmdline(cmdline: str, arch: Arch, *, remove: tuple[str, ...] = (),
                    append: tuple[str, ...] = (), unit: bool = True,
                    network: bool = False) -> str:
    """Words of `cmdline` without REMOVE's, then the arch's additions and the capture
    unit (and the network, for a network target); then every word named in `remove`
    is dropped (so a configuration can drop a default too) and `append` is added.

    Words after a bare "--" are arguments for init and are dropped: the
    capture boot decides what init runs.
    """
    words = split_cmdline(cmdline)
    if "--" in words:
        words = words[:words.index("--")]
    kept = [w for w in words if w.partition("=")[0] not in REMOVE]
    extra = [*arch.capture_options, *([CAPTURE_UNIT] if unit else []),
             *([NETWORK_WANTS] if unit and network else [])]
    drop = set(remove)
    line = [w for w in [*kept, *extra] if w.partition("=")[0] not in drop]
    return " ".join(_quote(w) for w in [*line, *append])


def configured_cmdline(view: SystemView, cfg: Config, extra_append: tuple[str, ...] = ()) -> str:
    """The line every load and `status` give the capture kernel unless --cmdline replaces
    it: the running kernel's, made fit by `capture_cmdline` with the configuration's
    cmdline_remove and cmdline_append (then `extra_append`, a test's id)."""
    if view.cmdline is None:
        raise KdumpError("cannot read /proc/cmdline to derive the capture command line; "
                         "give --cmdline")
    return capture_cmdline(view.cmdline, view.arch, remove=cfg.cmdline_remove,
                           append=(*cfg.cmdline_append, *extra_append),
                           network=is_network(cfg))
