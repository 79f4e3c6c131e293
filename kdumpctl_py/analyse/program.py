"""Open a dump with drgn: the core file, then the vmlinux that matches it, else kallsyms.

drgn reads ELF vmcores itself and kdump-compressed ones through libkdumpfile,
for any architecture it supports, whatever the host. Its own debug-info
search runs after ours (it also finds modules' debug files under the debug
directories), with debuginfod left off: downloading a kernel's debug info
takes minutes and is `kdumpctl-py debuginfo fetch`'s job, said out loud.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kdumpctl_py.analyse.debuginfo import DEBUG_DIRS, Found, find_vmlinux
from kdumpctl_py.capture.dumpkind import KDUMP, readable_dump
from kdumpctl_py.capture.extent import Truncation, examine
from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.facts.vmcoreinfo import VmcoreInfo, parse_vmcoreinfo

if TYPE_CHECKING:
    import drgn

# drgn's architecture names (drgn.Architecture) as uname spells them.
UNAME_ARCH = {
    "X86_64": "x86_64",
    "AARCH64": "aarch64",
    "PPC64": "ppc64le",
    "S390X": "s390x",
    "RISCV64": "riscv64",
    "ARM": "arm",
    "I386": "i386",
}


@dataclass
class Opened:
    """A dump opened by drgn, with what is known about its debug info."""

    prog: drgn.Program
    path: str
    format: str
    vmcoreinfo: VmcoreInfo
    found: Found
    dwarf: bool = False
    vmlinux: str | None = None  # the file drgn loaded for the kernel
    kallsyms: bool = False  # kernel symbols from the dump's own kallsyms
    module_kallsyms: bool = False
    missing_modules: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # what drgn logged while loading
    truncation: Truncation | None = None  # how far short of its headers the file is

    @property
    def arch(self) -> str | None:
        platform = self.prog.platform
        if platform is None:
            return None
        name = str(platform.arch.name)
        return UNAME_ARCH.get(name, name.lower())

    @property
    def release(self) -> str | None:
        return self.vmcoreinfo.osrelease


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def drgn_log_captured(show: bool = False) -> Iterator[list[str]]:
    """Collect what drgn logs (missing debug info, ...) instead of letting it reach stderr."""
    logger = logging.getLogger("drgn")
    handler = _Collect()
    old = (logger.propagate, logger.level)
    logger.addHandler(handler)
    if not show:
        logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate, level = old[0], old[1]
        logger.setLevel(level)


def import_drgn() -> Any:
    try:
        import drgn
    except ImportError:
        raise KdumpError("drgn is not installed: analysis needs it "
                         "(pip install 'kdumpctl-py[analyse]', or Debian's python3-drgn)") from None
    return drgn


class Core(NamedTuple):
    prog: drgn.Program
    format: str
    vmcoreinfo: VmcoreInfo
    truncation: Truncation | None  # cut short after its headers: what is there is read


def open_core(path: str) -> Core:
    """A drgn Program on the core file alone, its format, its VMCOREINFO and how far
    short it is (the headers and descriptors are read once, here, for all of it)."""
    drgn = import_drgn()
    fmt, _head = readable_dump(path)
    cut, bad = examine(path)
    if cut is not None and cut.in_headers:  # libkdumpfile maps them: SIGBUS past the end
        raise UsageError(f"{path} is {cut}, before its headers end: nothing to analyse")
    if bad is not None:  # and what a descriptor points at: a huge one, SIGBUS too
        raise UsageError(f"{path}: page descriptor {bad} is damaged (its data would be "
                         "larger than a page), so drgn cannot read the dump safely; "
                         "kdumpctl-py dmesg may still read its log")
    prog = drgn.Program()
    try:
        prog.set_core_dump(path)
    except Exception as e:  # drgn's BadDataError, libkdumpfile's plain Exception, OSError
        if fmt == KDUMP and not getattr(drgn, "_with_libkdumpfile", True):
            raise KdumpError("this drgn was built without libkdumpfile, so it cannot read "
                             "kdump-compressed dumps; install a drgn wheel from PyPI") from None
        raise UsageError(f"drgn cannot open {path}: {e}") from None
    if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
        raise UsageError(f"{path} is a core dump, but not of a Linux kernel")
    try:
        text = prog["VMCOREINFO"].string_()
    except Exception as e:  # LookupError, FaultError, libkdumpfile's Exception
        raise UsageError(f"{path} has no readable VMCOREINFO: {e}") from None
    return Core(prog, fmt, parse_vmcoreinfo(text), cut)


def dump_arch(prog: drgn.Program) -> str | None:
    """The dump's architecture as uname spells it (drgn says AARCH64, X86_64)."""
    platform = prog.platform
    if platform is None:
        return None
    name = str(platform.arch.name).lower()
    return {"ppc64": "ppc64le"}.get(name, name)


def open_dump(path: str, vmlinux: str | None = None,
              debug_dirs: tuple[str, ...] = DEBUG_DIRS, cache: Path | None = None,
              search: bool = True, modules: bool = True, show_drgn_log: bool = False) -> Opened:
    """Open `path` with the best debug info to be had; never fails for the lack of it."""
    drgn = import_drgn()
    prog, fmt, info, cut = open_core(path)
    found = find_vmlinux(info.build_id, info.osrelease, vmlinux, debug_dirs, cache, search,
                         dump_arch(prog))
    opened = Opened(prog, path, fmt, info, found, truncation=cut)
    with drgn_log_captured(show_drgn_log) as messages:
        prog.set_enabled_debug_info_finders(["standard"])  # never debuginfod on its own
        prog.debug_info_options.directories = tuple(d for d in debug_dirs if os.path.isdir(d))
        paths = [found.vmlinux] if found.vmlinux else []
        try:
            if modules:
                prog.load_debug_info(paths, default=True)
            else:
                prog.load_debug_info(paths, main=True)
        except drgn.MissingDebugInfoError:
            pass  # which modules lack it is read from the modules below
        try:
            main = prog.main_module()
        except LookupError:  # drgn made no kernel module at all: no DWARF
            main = None
        if main is not None and main.debug_file_status == drgn.ModuleFileStatus.HAVE:
            opened.dwarf = True
            opened.vmlinux = main.debug_file_path
            opened.missing_modules = sorted(
                m.name for m in prog.modules()
                if m is not main and m.debug_file_status != drgn.ModuleFileStatus.HAVE
            )
        _load_kallsyms(opened)
    opened.messages[:0] = [m for m in messages if m]
    return opened


def _load_kallsyms(opened: Opened) -> None:
    """Symbols without DWARF: the kernel's own kallsyms, read from the dump.

    With DWARF they name functions in modules whose debug files are missing;
    without it, every kernel symbol drgn can print comes from here.
    """
    drgn = import_drgn()
    prog = opened.prog
    try:
        from drgn.helpers.linux import kallsyms
    except ImportError:  # drgn before 0.0.30
        return
    if not opened.dwarf:
        try:
            index = kallsyms.load_vmlinux_kallsyms(prog)
            prog.register_symbol_finder("vmlinux_kallsyms", index, enable_index=-1)
            opened.kallsyms = True
        except (LookupError, ValueError, drgn.FaultError, NotImplementedError,
                drgn.MissingDebugInfoError) as e:  # the last: VMCOREINFO without them (<6.0)
            opened.messages.append(f"kallsyms could not be read from the dump: {e}")
        return
    if opened.missing_modules:
        try:
            index = kallsyms.load_module_kallsyms(prog)
            prog.register_symbol_finder("module_kallsyms", index, enable_index=-1)
            opened.module_kallsyms = True
        except (LookupError, ValueError, drgn.FaultError, NotImplementedError,
                drgn.MissingDebugInfoError) as e:
            opened.messages.append(f"module kallsyms could not be read: {e}")
