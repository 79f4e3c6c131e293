"""Run the guest under QEMU with software emulation (TCG), console on a pipe."""

from __future__ import annotations

import logging
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import uefi
from .config import Arch
from .console import Console
from .errors import HarnessError

log = logging.getLogger("crash-cycle")


@dataclass(frozen=True)
class VmSpec:
    """What one QEMU run boots."""

    arch: Arch
    kernel: Path
    initrd: Path
    append: str
    disk: Path
    mem_mib: int
    smp: int
    uefi: bool = False  # through Debian's UEFI firmware (arm64: with ACPI, no device tree)
    nic: tuple[str, ...] = ()  # QEMU's network options; none: no network at all


def argv(spec: VmSpec) -> list[str]:
    """The QEMU command line. TCG only: the project promises software emulation."""
    return [
        spec.arch.qemu,
        *(uefi.machine(spec.arch) if spec.uefi else spec.arch.machine),
        "-accel", "tcg",
        "-m", str(spec.mem_mib),
        "-smp", str(spec.smp),
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", spec.append,
        "-drive", f"file={spec.disk},format=raw,if=none,id=dump",
        "-device", f"{spec.arch.disk_device},drive=dump",
        "-nographic",
        "-no-reboot",
        *(spec.nic or ("-nic", "none")),
        "-monitor", "none",
        "-serial", "stdio",
    ]


class Vm:
    """A running QEMU; a context manager that never leaves the process behind."""

    def __init__(self, spec: VmSpec | list[str], console_log: Path, stderr_log: Path) -> None:
        """Boot `spec`, or run a whole QEMU command line (a firmware boot has no -kernel)."""
        self.argv = argv(spec) if isinstance(spec, VmSpec) else list(spec)
        (console_log.parent / "qemu-argv.txt").write_text(shlex.join(self.argv) + "\n")
        log.debug("$ %s", shlex.join(self.argv))
        self._stderr = open(stderr_log, "wb")
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except FileNotFoundError as e:
            self._stderr.close()
            raise HarnessError(f"{self.argv[0]} not found",
                               hint="install qemu-system-arm / qemu-system-x86 / "
                                    "qemu-system-misc (setup.sh does)") from e
        assert self.proc.stdout is not None
        self.console = Console(self.proc.stdout, console_log)

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Terminate QEMU if it still runs, then collect the console to its end."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.console.join(10)
        self._stderr.close()
