"""Run in an arm64 or riscv64 guest before and after the capture kernel is loaded (crash-cycle
--check-script: stages check and check-loaded).

Usage: guest_abi.py KERNEL INITRD

Calls kexec_file_load with KEXEC_FILE_FDSET in every way the kernel must refuse and
prints one JSON object: each case's errno name (or "ok"), whether a capture kernel
was loaded before and after (every refusal changes nothing: a loaded one stays
loaded), and the kernel's list of fd types in sysfs. A kernel with the series
answers as tests/kernel/test_cycle.py expects; a kernel without it answers EINVAL
to all. Standard library only: it runs on Debian's Python.

On a kernel with IMA (kernel/build --profile arm64-lsm) it then loads the boot DTB
with the extended call: without a policy (stage check) the load passes and is undone.
With a capture kernel loaded (stage check-loaded) it enforces LoadPin, then writes the
IMA policy `appraise func=KEXEC_DTB_CHECK`; under each the extended load must be
refused (EPERM, EACCES: the DTB is a memfd, outside LoadPin's pinned root and without
a signature) with the loaded kernel still loaded, the plain kexec_file_load of the same
files must pass, and `kdumpctl-py restart --dtb` must fall back to it with one warning
(so the capture kernel that boots at the crash is the plain call's, whose DTB the kernel
built). The active LSMs and the kernel's LoadPin and IMA log lines go into the JSON too.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct
import subprocess
import sys

NR_KEXEC_FILE_LOAD = 294  # arm64 and riscv64 (asm-generic)
UNLOAD, ON_CRASH, NO_INITRAMFS, FDSET = 0x1, 0x2, 0x4, 0x40
KERNEL, INITRD, DTB = 0, 1, 2
SECURITYFS = "/sys/kernel/security"
IMA_POLICY_RULE = "appraise func=KEXEC_DTB_CHECK\n"
LOADPIN_ENFORCE = "/proc/sys/kernel/loadpin/enforce"
CYCLE_DTB = "/tmp/capture.dtb"  # crash-cycle --dtb-marker's, which the load stage passed
TYPES_FILES = ("/sys/kernel/kexec/file_fdset_types", "/sys/kernel/kexec_file_fdset_types")
# A whole FDT whose root has no properties, so no #address-cells: header, an empty
# reservation map, FDT_BEGIN_NODE "" FDT_END_NODE FDT_END, no strings.
NO_CELLS = (struct.pack(">10I", 0xD00DFEED, 72, 56, 72, 40, 17, 16, 0, 0, 16)
            + bytes(16) + struct.pack(">4I", 1, 0, 2, 9))

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def fdset(entries: list[tuple[int, int]]) -> ctypes.Array[ctypes.c_uint32]:
    """struct kexec_fdset as 32-bit words: nr_fd, then (type, fd) pairs."""
    words = [len(entries)]
    for kind, fd in entries:
        words += [kind, fd & 0xFFFFFFFF]
    return (ctypes.c_uint32 * len(words))(*words)


def call(kernel_fd: int, initrd_fd: int, flags: int,
         fds: ctypes.Array[ctypes.c_uint32] | None) -> str:
    cmdline = b"console=ttyAMA0\0"
    ret = libc.syscall(ctypes.c_long(NR_KEXEC_FILE_LOAD), ctypes.c_long(kernel_fd),
                       ctypes.c_long(initrd_fd), ctypes.c_long(len(cmdline)),
                       ctypes.c_char_p(cmdline), ctypes.c_long(flags),
                       ctypes.c_void_p(None if fds is None else ctypes.addressof(fds)))
    if ret == 0:  # a bug: unload what was loaded so the cycle goes on as before
        libc.syscall(ctypes.c_long(NR_KEXEC_FILE_LOAD), ctypes.c_long(-1), ctypes.c_long(-1),
                     ctypes.c_long(0), None, ctypes.c_long(UNLOAD | ON_CRASH), None)
        return "ok"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name)
    os.write(fd, data)
    return fd


def crash_loaded() -> bool:
    with open("/sys/kernel/kexec_crash_loaded") as f:
        return f.read().strip() == "1"


def types_line() -> str | None:
    for path in TYPES_FILES:
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            continue
    return None


def plain_reboot_load(kernel: int, initrd: int) -> str:
    """The plain kexec_file_load of the same files, for reboot (the loaded capture kernel
    is left alone), undone again."""
    cmdline = b"console=ttyAMA0\0"
    ret = libc.syscall(ctypes.c_long(NR_KEXEC_FILE_LOAD), ctypes.c_long(kernel),
                       ctypes.c_long(initrd), ctypes.c_long(len(cmdline)),
                       ctypes.c_char_p(cmdline), ctypes.c_long(0), None)
    if ret != 0:
        return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    libc.syscall(ctypes.c_long(NR_KEXEC_FILE_LOAD), ctypes.c_long(-1), ctypes.c_long(-1),
                 ctypes.c_long(0), None, ctypes.c_long(UNLOAD), None)
    return "ok"


def kdumpctl_py_restart() -> dict[str, object]:
    """`kdumpctl-py restart` with the cycle's DTB: its extended load is refused as the raw
    one was, so it loads again with the plain call and says so in one warning."""
    r = subprocess.run(["kdumpctl-py", "restart", "--kernel", sys.argv[1], "--initrd",
                        sys.argv[2], "--dtb", CYCLE_DTB], capture_output=True, text=True,
                       check=False)
    return {"rc": r.returncode, "stdout": r.stdout.splitlines(),
            "stderr": r.stderr.splitlines(), "crash_loaded_after": crash_loaded()}


def refused(kernel: int, initrd: int, fdt: bytes) -> dict[str, object]:
    """Under a security module that refuses the memfd DTB: the extended load (the loaded
    capture kernel stays), the plain one, then kdumpctl-py's fallback."""
    dtb = memfd("boot-dtb", fdt)
    out: dict[str, object] = {
        "extended_load_with_dtb": call(-1, -1, ON_CRASH | FDSET,
                                       fdset([(KERNEL, kernel), (INITRD, initrd), (DTB, dtb)])),
        "crash_loaded_after": crash_loaded(),
        "plain_load": plain_reboot_load(kernel, initrd),
    }
    os.close(dtb)
    out["kdumpctl_py"] = kdumpctl_py_restart()
    return out


def security(kernel: int, initrd: int, fdt: bytes, loaded: bool) -> dict[str, object] | None:
    """With nothing loaded, the extended load of the boot DTB under no policy. With the
    capture kernel loaded, LoadPin enforced (the memfd is outside the pinned root), then
    the IMA policy (it cannot be taken back: it is set last): each refuses the extended
    load and not the plain one, and kdumpctl-py falls back."""
    if os.path.isdir(SECURITYFS) and not os.path.isdir(f"{SECURITYFS}/ima"):
        subprocess.run(["mount", "-t", "securityfs", "securityfs", SECURITYFS], check=False)
    if not os.path.isdir(f"{SECURITYFS}/ima"):
        return None
    with open(f"{SECURITYFS}/lsm") as f:
        out: dict[str, object] = {"lsm": f.read().strip()}
    if not loaded:
        dtb = memfd("boot-dtb", fdt)
        out["extended_load_with_dtb"] = call(
            -1, -1, ON_CRASH | FDSET, fdset([(KERNEL, kernel), (INITRD, initrd), (DTB, dtb)]))
    else:
        with open(LOADPIN_ENFORCE, "w") as f:
            f.write("1\n")
        out["loadpin"] = refused(kernel, initrd, fdt)
        with open(LOADPIN_ENFORCE, "w") as f:
            f.write("0\n")
        with open(f"{SECURITYFS}/ima/policy", "w") as f:
            f.write(IMA_POLICY_RULE)
        out["ima"] = {"policy": IMA_POLICY_RULE.strip(), **refused(kernel, initrd, fdt)}
    log = subprocess.run(["dmesg"], capture_output=True, text=True, check=False).stdout
    out["log"] = [line for line in log.splitlines()
                  if "LoadPin" in line or "kexec-dtb" in line or "ima" in line.lower()]
    return out


def main() -> int:
    loaded_before = crash_loaded()
    kernel = os.open(sys.argv[1], os.O_RDONLY)
    initrd = os.open(sys.argv[2], os.O_RDONLY)
    with open("/sys/firmware/fdt", "rb") as f:
        fdt = f.read()
    junk = memfd("junk-dtb", b"\xd0\x0d\xfe\xed" + b"\xff" * 60)
    big = memfd("big-dtb", fdt + b"\0" * (3 << 20))
    truncated = memfd("truncated-dtb", fdt[: len(fdt) // 2])
    no_cells = memfd("no-cells-dtb", NO_CELLS)
    closed = os.dup(junk)
    os.close(closed)
    k, i = (KERNEL, kernel), (INITRD, initrd)
    crash = ON_CRASH | FDSET
    cases = {
        "null set (the probe)": call(-1, -1, FDSET, None),
        "more than 8 entries": call(-1, -1, crash, fdset([k, i] + [(DTB, junk)] * 7)),
        "unknown type": call(-1, -1, crash, fdset([k, (3, initrd)])),
        "kernel twice": call(-1, -1, crash, fdset([k, i, (KERNEL, kernel)])),
        "no kernel": call(-1, -1, crash, fdset([i])),
        "kernel_fd argument": call(kernel, -1, crash, fdset([k])),
        "initrd_fd argument": call(-1, initrd, crash, fdset([k])),
        "with unload": call(-1, -1, UNLOAD | crash, fdset([k])),
        "no-initramfs with an initrd": call(-1, -1, NO_INITRAMFS | crash, fdset([k, i])),
        "negative fd": call(-1, -1, crash, fdset([k, (DTB, -5)])),
        "closed fd": call(-1, -1, crash, fdset([k, (DTB, closed)])),
        "closed kernel fd": call(-1, -1, crash, fdset([(KERNEL, closed)])),
        "dtb not an fdt": call(-1, -1, crash, fdset([k, i, (DTB, junk)])),
        "dtb over 2 MiB": call(-1, -1, crash, fdset([k, i, (DTB, big)])),
        "dtb shorter than its totalsize": call(-1, -1, crash, fdset([k, i, (DTB, truncated)])),
        "dtb root without cells": call(-1, -1, crash, fdset([k, i, (DTB, no_cells)])),
    }
    after = crash_loaded()
    json.dump({"cases": cases, "crash_loaded_before": loaded_before,
               "crash_loaded_after": after, "types": types_line(),
               "security": security(kernel, initrd, fdt, loaded_before)},
              sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
