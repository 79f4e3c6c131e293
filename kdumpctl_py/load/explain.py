"""What a failed kexec call means for the user, and what to do next."""

from __future__ import annotations

import errno
import os

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.load.syscalls import KexecCallError

# What each errno of a kexec call means, where it says the same whatever the machine.
REASONS = {
    errno.ENODATA: "the kernel image is not signed and this kernel requires signatures",
    errno.EKEYREJECTED: ("the kernel image's signature was rejected (or this kernel cannot "
                         "verify this image type); use a kernel signed for this machine"),
    errno.ENOKEY: ("the kernel image is signed by a key that is in none of the kernel's "
                   "keyrings (.builtin_trusted_keys, .secondary_trusted_keys, .platform)"),
    errno.EBUSY: "another kexec load or unload is running; try again",
    errno.ENOSYS: "this kernel was built without {call} (use --method auto)",
    errno.ENOEXEC: "the kernel does not recognise this image as bootable on this architecture",
    errno.EINVAL: ("the kernel rejected the {call} arguments (unknown flag, bad image header, "
                   "overlapping or misaligned segments, or a command line too long)"),
    errno.EFBIG: "a file is larger than kexec_file_load accepts (4 GiB)",
}


def explain(e: KexecCallError, view: SystemView, method: str,
            dtb: str | None = None) -> KdumpError:
    """One line for a failed load: the cause and the next step; `dtb` is the device tree
    handed to the extended call, named when lockdown may be what refused it."""
    err, call = e.errno, e.call
    if err == errno.EPERM:
        why = _not_permitted(view, call, dtb)
    elif err in (errno.EADDRNOTAVAIL, errno.ENOMEM):
        reserved = view.kexec_crash_size
        size = f" ({reserved >> 20} MiB)" if reserved else ""
        why = (f"the crash region{size} is too small for this kernel and initrd; "
               "see kdumpctl-py estimate, raise crashkernel= and reboot")
    elif err in REASONS:
        why = REASONS[err].format(call=call)
    else:
        why = e.strerror or f"errno {err}"
    loaded = SystemView(view.root).kexec_crash_loaded  # read afresh: the call may have unloaded
    state = {True: "a capture kernel is loaded", False: "no capture kernel is loaded",
             None: "whether a capture kernel is loaded is unknown"}[loaded]
    return KdumpError(f"{call} ({method}) failed: {why}; {state}")


def _not_permitted(view: SystemView, call: str, dtb: str | None) -> str:
    """Why EPERM: kexec disabled, lockdown (and what it refused), not root, or a limit."""
    locked = view.lockdown not in (None, "none")
    if view.kexec_load_disabled:
        return "kexec is disabled until reboot (sysctl kernel.kexec_load_disabled=1)"
    if locked and call == "kexec_load":
        return (f"kernel lockdown ({view.lockdown}) forbids kexec_load; use --method file "
                "with a signed kernel")
    if locked and dtb is not None:
        return (f"kernel lockdown ({view.lockdown}) refuses the device tree {dtb} unless "
                "IMA appraises it with a signature (and the kernel image unless signed); "
                "use --method file to let the kernel build its own")
    if locked:
        return (f"kernel lockdown ({view.lockdown}) requires a signed kernel image that the "
                "kernel's keyrings trust")
    if os.geteuid() != 0:
        return "loading a capture kernel needs root (CAP_SYS_BOOT)"
    return ("the kernel refused: check sysctls kernel.kexec_load_limit_panic (each "
            "capture kernel load counts), kernel.kexec_load_limit_reboot and "
            "kernel.kexec_load_disabled")
