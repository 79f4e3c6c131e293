"""Is kdump operational on this machine? A pure assessment of a SystemView."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.cmdline import param_values
from kdumpctl_py.facts.view import DEFAULT_TARGET, DumpEntry, SystemView
from kdumpctl_py.plan.bootloader import has_boot_config
from kdumpctl_py.plan.crashkernel import in_force
from kdumpctl_py.plan.method import choose_method

if TYPE_CHECKING:
    from kdumpctl_py.config.model import Config

NOT_LOADED = "no capture kernel is loaded"


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    size: int


@dataclass(frozen=True)
class Status:
    operational: bool
    reason: str | None
    release: str
    arch: str
    requested: str | None
    regions: list[Region]
    reserved_bytes: int | None
    loaded: bool | None
    load_paths: dict[str, str]
    load_paths_basis: str | None  # why they were not probed, when they were not
    method: str | None
    method_why: str
    lockdown: str | None
    secure_boot: bool | None
    kexec_load_disabled: bool | None
    signatures: str
    target: str
    free_bytes: int | None
    newest_dump: DumpEntry | None
    last_test: str | None
    capture_cmdline: str | None = None  # what a load gives the capture kernel
    dumps_elsewhere: str | None = None  # where the dumps are when status cannot list them

    def to_json(self) -> dict[str, Any]:
        """The assessment's own keys; `requested`, `reserved` come from kdumpctl_py.vocabulary."""
        out = asdict(self)
        for key in ("requested", "regions", "reserved_bytes"):
            del out[key]
        return out


def signature_policy(view: SystemView) -> str:
    """Whether kexec_file_load will insist on a signed kernel image."""
    config = view.kernel_config
    if config is None:
        return "unknown"
    if config.get("CONFIG_KEXEC_SIG_FORCE") == "y":
        return "required (CONFIG_KEXEC_SIG_FORCE)"
    if config.get("CONFIG_KEXEC_SIG") == "y" and view.secure_boot:
        return "required (Secure Boot)"
    if config.get("CONFIG_KEXEC_SIG") == "y":
        return "checked when present, not required"
    return "not checked"


def assess(view: SystemView, target: str = DEFAULT_TARGET, method: str = "auto",
           dtb: str | None = None) -> Status:
    """`method` and `dtb` are the configuration's: status answers for the method `start`
    would use (auto takes the extended call only with a device tree)."""
    iomem = view.iomem
    regions = []
    if iomem is not None and not iomem.masked:
        regions = [Region(r.start, r.end, r.size) for r in iomem.crash_regions]
    reserved = view.kexec_crash_size
    if reserved is None and regions:
        reserved = sum(r.size for r in regions)
    requested = param_values(view.cmdline or "", "crashkernel")
    # the one the kernel went by: a later crashkernel=X,low is not it (found by review)
    asked = (in_force(view.cmdline or "", view.uname.release)
             or (requested[-1] if requested else None))
    choice = choose_method(view, method, with_dtb=dtb is not None)
    dumps = view.dumps(target)
    loaded = view.kexec_crash_loaded

    # What blocks first comes first: memory is no use to a kernel that cannot load.
    reason: str | None = None
    if view.kexec_crash_size is None and not view.path("/sys/kernel").is_dir():
        reason = "cannot read /sys/kernel; is sysfs mounted?"
    elif not loaded and choice.method is None:
        reason = f"no capture kernel can be loaded: {choice.why}"
    elif not reserved:
        if not requested:
            how = ("kdumpctl-py reset-crashkernel" if has_boot_config(view.root)
                   else "in the boot loader's configuration")
            reason = ("no memory is reserved for a capture kernel: add crashkernel= to the "
                      f"kernel command line ({how}) and reboot")
        else:
            reason = (f"crashkernel={asked} was asked for but the kernel reserved "
                      "nothing: see the boot log and kdumpctl-py showmem")
    elif loaded is None:
        reason = "cannot tell whether a capture kernel is loaded (/sys/kernel/kexec_crash_loaded)"
    elif not loaded:
        reason = f"{NOT_LOADED}: run kdumpctl-py start"
    return Status(
        operational=reason is None,
        reason=reason,
        release=view.uname.release,
        arch=view.uname.machine,
        requested=asked,
        regions=regions,
        reserved_bytes=reserved,
        loaded=loaded,
        load_paths=dict(view.probes),
        load_paths_basis=view.probes_skipped,
        method=choice.method,
        method_why=choice.why,
        lockdown=view.lockdown,
        secure_boot=view.secure_boot,
        kexec_load_disabled=view.kexec_load_disabled,
        signatures=signature_policy(view),
        target=target,
        free_bytes=view.free_bytes(target),
        newest_dump=dumps[-1] if dumps else None,
        last_test=None,
    )


def start_would_fail(st: Status, view: SystemView, cfg: Config) -> Status:
    """Where no capture kernel is loaded, what `start` would refuse with instead of the
    advice to run it (found by review: an arm64 machine without /sys/firmware/fdt was
    told to run start, which then failed). Its plan reads the kernel and initrd, so only
    a machine that is not operational for this reason pays for it."""
    from dataclasses import replace

    from kdumpctl_py.plan.load import plan_capture_load

    if st.loaded is not False or not (st.reason or "").startswith(NOT_LOADED):
        return st
    try:
        plan_capture_load(view, cfg)
    except KdumpError as e:
        return replace(st, reason=f"{NOT_LOADED}, and kdumpctl-py start would fail: {e}")
    return st
