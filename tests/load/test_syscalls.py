"""Syscall numbers follow the interpreter's ABI, not uname: 32-bit user space on a
64-bit kernel enters through the compat table."""

from __future__ import annotations

import errno
import os

import pytest

from kdumpctl_py.arch import get_arch
from kdumpctl_py.load import extended, syscalls

X86 = get_arch("x86_64")
ARM64 = get_arch("aarch64")


@pytest.mark.parametrize("pointer,multiarch,abi", [
    (8, "x86_64-linux-gnu", "64"),
    (8, "aarch64-linux-gnu", "64"),
    (4, "i386-linux-gnu", "i386"),
    (4, "x86_64-linux-gnux32", "x32"),
    (4, "arm-linux-gnueabihf", "arm"),
    (4, "", "i386"),
])
def test_user_abi(pointer: int, multiarch: str, abi: str) -> None:
    assert syscalls.user_abi(pointer, multiarch) == abi


def test_numbers_per_abi() -> None:
    assert syscalls.syscall_numbers(X86, "64") == (246, 320)
    assert syscalls.syscall_numbers(ARM64, "64") == (104, 294)
    # arch/arm/tools/syscall.tbl, as arm64's compat entry takes it
    assert syscalls.syscall_numbers(ARM64, "arm") == (347, 401)
    # syscall_32.tbl has kexec_load only
    assert syscalls.syscall_numbers(X86, "i386") == (283, None)
    assert syscalls.syscall_numbers(X86, "x32") == (0x40000000 | 528, 0x40000000 | 320)


def test_a_32_bit_interpreter_calls_the_compat_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def raw_syscall(nr: int, *args: int | None) -> int:
        calls.append(nr)
        return errno.EINVAL

    monkeypatch.setattr(syscalls, "raw_syscall", raw_syscall)
    monkeypatch.setattr(syscalls, "_numbers",
                        lambda arch: syscalls.syscall_numbers(arch, "arm"))
    monkeypatch.setattr(extended, "raw_syscall", syscalls.raw_syscall)
    machine = ["aarch64"]  # what the 64-bit kernel's uname says
    monkeypatch.setattr(os, "uname", lambda: type("U", (), {"machine": machine[0]})())
    assert syscalls.probe_kexec_file_load(ARM64) == "available"
    assert syscalls.probe_kexec_load(ARM64) == "available"
    assert calls == [401, 347]
    # i386 has no kexec_file_load: the call is missing, not made with a wrong number.
    machine[0] = "x86_64"
    monkeypatch.setattr(syscalls, "_numbers",
                        lambda arch: syscalls.syscall_numbers(arch, "i386"))
    assert syscalls.probe_kexec_file_load(X86) == "missing"
    assert extended.probe_extended(X86) == "missing"
    with pytest.raises(syscalls.KexecCallError) as e:
        syscalls.kexec_file_load(X86, 3, 4, "", 0)
    assert e.value.errno == errno.ENOSYS
    assert calls == [401, 347]
