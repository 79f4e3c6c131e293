"""Which way to load the capture kernel on this machine, and why.

Preference: the extended kexec_file_load when a device tree was given (the
only thing it adds over the plain call), then plain kexec_file_load (the
kernel builds the elfcorehdr and DTB itself; the only call allowed under
lockdown), then kexec_load with segments built in user space (kernels without
KEXEC_FILE, e.g. every Debian arm64 kernel up to 6.12).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kdumpctl_py.config.settings import LOAD_METHODS
from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.view import SystemView

PROBE_OF = {"extended": "extended", "file": "kexec_file_load", "classic": "kexec_load"}


@dataclass(frozen=True)
class MethodChoice:
    method: str | None
    why: str


def choose_method(view: SystemView, wanted: str = "auto", with_dtb: bool = False) -> MethodChoice:
    """`with_dtb`: a device tree was given (--dtb or the configuration's dtb)."""
    probes = view.probes
    if wanted != "auto":
        return _forced(probes, wanted)
    locked = view.lockdown not in (None, "none")
    extended = probes.get("extended", "unknown")
    file_load = probes.get("kexec_file_load") == "available"
    if extended == "available" and (with_dtb or not file_load) and not (locked and file_load):
        return MethodChoice("extended", "a device tree was given and the kernel offers the "
                            "extended kexec_file_load")
    if file_load:
        if with_dtb and locked and extended == "available":
            return MethodChoice("file", f"lockdown ({view.lockdown}) refuses a DTB from user "
                                "space unless IMA appraises it; the kernel builds its own")
        if with_dtb:
            return MethodChoice("file", f"the extended kexec_file_load is {extended}, so the "
                                "device tree given is not used; the kernel builds its own")
        return MethodChoice("file", "kexec_file_load is available; the kernel builds the headers "
                            "and the device tree (no device tree given)")
    if probes.get("kexec_load") == "available":
        if locked:
            return MethodChoice(None, _locked_out(view))
        if probes.get("kexec_file_load") == "missing":  # ENOSYS: built without KEXEC_FILE
            return MethodChoice("classic", f"kexec_load is the only path: this {view.arch.name} "
                                "kernel has no KEXEC_FILE; segments built here")
        return MethodChoice("classic", "the kernel lacks kexec_file_load; segments built here")
    return MethodChoice(None, _none_available(view, probes))


def _forced(probes: Mapping[str, str], wanted: str) -> MethodChoice:
    if wanted not in LOAD_METHODS:
        raise UsageError(f"unknown method {wanted!r} (auto, {', '.join(LOAD_METHODS)})")
    state = probes.get(PROBE_OF[wanted], "unknown")
    # Only the answer this method's kernel gives counts: "unknown" is not "available".
    if state == "available":
        return MethodChoice(wanted, f"forced by configuration ({PROBE_OF[wanted]}: {state})")
    return MethodChoice(None, f"{wanted} was asked for but {PROBE_OF[wanted]} is {state}")


def _none_available(view: SystemView, probes: Mapping[str, str]) -> str:
    """Why no kexec call can load a capture kernel here."""
    states = {probes.get(p, "unknown") for p in ("kexec_file_load", "kexec_load")}
    if "not-permitted" in states:
        if view.kexec_load_disabled:
            return "kexec is disabled (sysctl kernel.kexec_load_disabled=1)"
        if view.lockdown not in (None, "none") and probes.get("kexec_load") == "not-permitted":
            return _locked_out(view)
        limits = view.kexec_load_limits
        if limits.get("panic") == 0:
            return ("no capture kernel loads are left until reboot "
                    "(kernel.kexec_load_limit_panic=0, kernel.kexec_load_limit_reboot="
                    f"{limits.get('reboot', 'unknown')}); each load counts against "
                    "the panic limit, each other kexec call against the reboot limit")
        return "kexec is not permitted (run as root; check lockdown)"
    if states == {"missing"}:
        return "this kernel was built without kexec (CONFIG_KEXEC*)"
    return "could not tell which kexec calls this kernel offers"


def _locked_out(view: SystemView) -> str:
    """Lockdown refuses kexec_load (EPERM, what the probe meets there too) and the kernel
    has no other call: say so, and what boots a kernel that can load one."""
    return (f"kexec_load is blocked by lockdown ({view.lockdown}) and this kernel has no "
            "kexec_file_load, the only call lockdown allows: boot a kernel built with "
            "CONFIG_KEXEC_FILE, or boot without lockdown (no lockdown= word, Secure Boot off)")
