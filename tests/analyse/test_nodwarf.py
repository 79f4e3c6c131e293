from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdumpctl_py.analyse.kernlog import LogLine, call_trace, crash_context
from kdumpctl_py.analyse.model import Frame
from kdumpctl_py.analyse.nodwarf import fix_return_addresses, version_from_log


@dataclass(frozen=True)
class Sym:
    name: str
    address: int
    size: int


class Kallsyms:
    """prog.symbol()/prog.symbols() over a few symbols, as kallsyms gives them, and the
    prog.cache drgn keeps for helpers."""

    def __init__(self, *syms: Sym) -> None:
        self.syms = syms
        self.cache: dict[str, object] = {}

    def symbols(self, name: str) -> list[Sym]:
        return [s for s in self.syms if s.name == name]

    def symbol(self, addr: int) -> Sym:
        for s in self.syms:
            if s.address <= addr < s.address + s.size:
                return s
        raise LookupError(hex(addr))


# arm64 6.1: panic() does not return, so the return address in sysrq_handle_crash is the
# first byte of the next function, and arm64's trace prints it as such.
ARM64 = [
    "Kernel panic - not syncing: sysrq triggered crash",
    "CPU: 0 PID: 162 Comm: kdumpcrasher Not tainted 6.1.0-56-cloud-arm64 #1  Debian 6.1.192-2",
    "Hardware name: linux,dummy-virt (DT)",
    "Call trace:",
    " dump_backtrace+0xe4/0x140",
    " panic+0x184/0x364",
    " sysrq_reset_seq_param_set+0x0/0xa0",
    " __handle_sysrq+0x90/0x19c",
    " dup+0x0/0x10",
    " mod_func+0x0/0x10 [virtio_blk]",
    "SMP: stopping secondary CPUs",
]
PROG: Any = Kallsyms(
    Sym("sysrq_handle_crash", 0x1000, 0x20),
    Sym("sysrq_reset_seq_param_set", 0x1020, 0xA0),
    Sym("dup", 0x2000, 0x10),
    Sym("dup", 0x3000, 0x10),
)


def test_return_addresses_at_a_function_start_name_the_caller() -> None:
    lines = [LogLine(52 * 10**9, text) for text in ARM64]
    ctx = crash_context(lines)
    assert ctx is not None
    frames = fix_return_addresses(PROG, call_trace(lines, ctx.line))
    assert [(f.function, f.offset, f.size) for f in frames] == [
        ("dump_backtrace", 0xE4, 0x140),
        ("panic", 0x184, 0x364),
        ("sysrq_handle_crash", 0x20, 0x20),
        ("__handle_sysrq", 0x90, 0x19C),
        ("dup", 0, 0x10),  # two symbols of that name: left as logged
        ("mod_func", 0, 0x10),  # modules have no kallsyms without DWARF
    ]


def test_the_innermost_frame_is_left_alone() -> None:
    frame = Frame(0, None, "sysrq_reset_seq_param_set", "sysrq_reset_seq_param_set", 0, 0xA0)
    assert fix_return_addresses(PROG, [frame]) == [frame]


def test_version_from_the_boot_banner() -> None:
    lines = [LogLine(0, "Booting Linux on physical CPU 0x0000000000 [0x411fd070]"),
             LogLine(0, "Linux version 6.1.0-56-cloud-arm64 (debian-kernel@lists.debian.org) "
                        "(gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, GNU ld (GNU Binutils for "
                        "Debian) 2.40) #1 SMP Debian 6.1.192-2 (2026-11-16)")]
    assert version_from_log(lines) == "#1 SMP Debian 6.1.192-2 (2026-11-16)"
    assert version_from_log(lines[:1]) is None


def test_the_debug_package_hint_is_the_dumps_distributions() -> None:
    """The distribution comes from the dump's version string or release (issue 23, item 13)."""
    from types import SimpleNamespace

    from kdumpctl_py.analyse.nodwarf import missing_text

    def hint(release: str, version: str | None) -> str:
        opened = SimpleNamespace(path="/v", release=release, found=SimpleNamespace(build_id=None))
        return missing_text(opened, version)  # type: ignore[arg-type]

    debian = hint("6.1.0-56-cloud-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)")
    assert "kdumpctl-py debuginfo fetch /v" in debian and "linux-image-6.1.0-56-cloud-amd64-dbg" \
        in debian
    assert "Fedora" not in debian and "kernel-debuginfo" not in debian
    assert "debuginfo fetch" in hint("6.12.118+deb13-cloud-arm64", None)
    fedora = hint("6.11.4-301.fc41.x86_64", "#1 SMP PREEMPT_DYNAMIC Tue Oct 22 2024")
    assert "kernel-debuginfo-6.11.4-301.fc41.x86_64" in fedora and "Debian" not in fedora
    assert "debuginfo fetch" not in fedora
    ubuntu = hint("6.8.0-45-generic", "#45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC")
    assert "dbgsym" in ubuntu and "Fedora" not in ubuntu
