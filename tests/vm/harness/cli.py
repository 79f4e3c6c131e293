"""Command line of tests/vm/crash-cycle."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from .analysis import ANALYSERS
from .config import ARCHES, DEFAULT_CRASHKERNEL, DEFAULT_MEM_MIB, DEFAULT_SMP, SUITES
from .cycle import EXIT_HARNESS, Options, run_cycle
from .errors import HarnessError
from .kernels import KERNEL_SUITES
from .stages import STAGES

REPO = Path(__file__).resolve().parents[3]

DESCRIPTION = """\
Run one kdump crash cycle of kdumpctl-py in a QEMU guest (software emulation).

The guest is built from Debian's packages for the architecture and suite: the
cloud kernel (linux-image-cloud-ARCH, today's ABI), busybox, Debian's Python
with python3-libfdt, numpy, pyelftools and zstandard, kexec-tools, and a wheel
of this repository. The first kernel records `kdumpctl-py status` and
`snapshot`, loads a capture kernel (`kdumpctl-py start`, or kexec-tools) and
panics through sysrq; the capture kernel saves /proc/vmcore (`kdumpctl-py
save`, a plain copy, or the suite's makedumpfile) to an ext4 disk image, which
is read back on the host and analysed (`kdumpctl-py analyse`, or a drgn script)
against the kernel's vmlinux from Debian's -dbg package.
"""

EPILOG = """\
output in DIR: console.log (and console-first.log / console-capture.log),
status.json, snapshot.tar.gz, dumps/NAME/vmcore, results/ (per-stage exit
status and stderr from the guest), timings.json, report.json, result.json.

exit status: 0 the dump was saved, read back and analysed; 1 a host-side step
failed; 2 usage; 3 a guest stage failed or timed out (result.json names it);
4 the dump was saved but could not be analysed.

environment: KDUMPCTL_VM_CACHE (cache directory, default
~/.cache/kdumpctl-py/vm), KDUMPCTL_VM_PYTHON (host interpreter with drgn,
default the repository's .venv), KDUMPCTL_VM_TIMEOUT_SCALE (multiplies every
stage timeout).
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="crash-cycle", description=DESCRIPTION, epilog=_impl_help() + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--arch", required=True, choices=sorted(ARCHES),
                    help="guest architecture")
    ap.add_argument("--out", required=True, type=Path, metavar="DIR",
                    help="directory for the run's results (created; earlier results in it "
                         "are replaced)")
    ap.add_argument("--suite", choices=sorted(SUITES),
                    help="Debian suite the guest is built from (default: the kernel "
                         "suite's userland, else bookworm; trixie for riscv64)")
    ap.add_argument("--kernel-suite", choices=sorted(KERNEL_SUITES), metavar="SUITE",
                    help="boot the cloud kernel of this Debian suite ("
                         + ", ".join(sorted(KERNEL_SUITES)) + ") with the userland of "
                         "--suite; bullseye's 5.10 boots with bookworm's userland, since "
                         "kdumpctl-py needs Python 3.11")
    ap.add_argument("--busy", action="store_true",
                    help="before the crash, fill memory with page cache, shmem, slab, "
                         "anonymous and hugetlb pages (harness/busy.py)")
    ap.add_argument("--crash", choices=("sysrq", "oops"), default="sysrq",
                    help="how the first kernel crashes: sysrq (echo c > /proc/sysrq-trigger, "
                         "the default), or oops: panic_on_oops=1 and a module that writes "
                         "through a NULL pointer when loaded, built against the guest "
                         "kernel's headers (x86_64 guests on an x86_64 host; harness/oops.py)")
    ap.add_argument("--whole-copy", action="store_true",
                    help="after the save, copy /proc/vmcore whole to dumps/whole/copy.elf, "
                         "for comparing page filters on the host")
    ap.add_argument("--gdb-index", action="store_true",
                    help="while the guest runs, give the -dbg vmlinux a gdb index (beside it "
                         "in the cache), so that crash on the host starts in seconds")
    ap.add_argument("--smp", type=int, default=DEFAULT_SMP, metavar="N",
                    help=f"guest CPUs (default {DEFAULT_SMP})")
    ap.add_argument("--mem", type=int, default=DEFAULT_MEM_MIB, metavar="MiB",
                    help=f"guest memory in MiB (default {DEFAULT_MEM_MIB})")
    ap.add_argument("--crashkernel", default=DEFAULT_CRASHKERNEL, metavar="SPEC",
                    help=f"crashkernel= for the first kernel (default {DEFAULT_CRASHKERNEL})")
    ap.add_argument("--loader", choices=("kdumpctl-py", "kexec-tools"),
                    help="what loads the capture kernel (default: kdumpctl-py if the wheel "
                         "has a `start` subcommand, else kexec-tools); same as --impl "
                         "load=LOADER")
    ap.add_argument("--impl", action="append", default=[], metavar="STAGE=IMPL",
                    help="run this implementation of a stage (repeatable); see the list "
                         "below")
    ap.add_argument("--dump-level", type=int, metavar="N",
                    help="passed to `kdumpctl-py save`, and to makedumpfile -d (31 when not "
                         "given); the plain copy ignores it")
    ap.add_argument("--save-option", action="append", default=[], metavar="ARG",
                    help="one more argument for `kdumpctl-py save` (repeatable; give it "
                         "with =, e.g. --save-option=--compress=zlib)")
    ap.add_argument("--append", action="append", default=[], metavar="ARG",
                    help="extra first-kernel command-line argument (repeatable), "
                         "e.g. --append nokaslr")
    ap.add_argument("--kernel-image", type=Path, metavar="IMAGE",
                    help="boot this kernel (e.g. kernel/build's arm64 Image) instead of "
                         "Debian's cloud kernel; it needs virtio-blk and ext4 built in (no "
                         "modules are loaded); analysis uses the vmlinux beside it")
    ap.add_argument("--vmlinux", type=Path, metavar="PATH",
                    help="the vmlinux for analysing a --kernel-image dump (default: "
                         "IMAGE's directory/vmlinux)")
    ap.add_argument("--dtb-marker", metavar="VALUE",
                    help="`kdumpctl-py start --dtb`: the guest's /sys/firmware/fdt plus "
                         "/chosen/kdumpctl-py,marker = VALUE and what the kernel must not "
                         "take from user space (marker_dtb.py); the capture kernel's copy of "
                         "the property goes to results/capture/capture-dt.out, the DTB it "
                         "booted with to results/capture/capture.dtb")
    ap.add_argument("--check-script", type=Path, metavar="FILE",
                    help="a Python script the first kernel runs, with the capture kernel and "
                         "initrd paths as arguments, before anything is loaded and again "
                         "once the capture kernel is loaded (optional stages `check` and "
                         "`check-loaded`: results/first/check.out, check-loaded.out, .rc)")
    ap.add_argument("--selftest", type=Path, metavar="FILE",
                    help="a static program (a kselftest) the first kernel runs with the "
                         "capture kernel loaded, with its kernel and initrd paths as "
                         "arguments (optional stage `selftest`: results/first/selftest.out)")
    ap.add_argument("--load-limits", metavar="REBOOT,PANIC",
                    help="set kernel.kexec_load_limit_reboot and _panic (Linux 6.6+) before "
                         "the load, run status, status --json and start --dry-run, and "
                         "record the counts after each and after the load (optional stages "
                         "`limits` and `limits-loaded`: results/first/limits.out, "
                         "limits-loaded.out, limits-status.json); the disk's /boot gets the "
                         "kernel's config, from which kdumpctl-py then judges the calls")
    ap.add_argument("--firmware", choices=("none", "uefi"), default="none",
                    help="uefi: boot the kernel through Debian's UEFI firmware (ovmf, "
                         "qemu-efi-aarch64; arm64 with -machine virt,acpi=on, so the guest "
                         "runs on ACPI and the EFI stub's device tree); default: QEMU "
                         "starts the kernel itself")
    ap.add_argument("--keep", action="store_true",
                    help="keep DIR/work (initrd, disk image, wheel) after the run")
    ap.add_argument("--refresh", action="store_true",
                    help="refresh the private apt lists even if they are recent")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="log every host command")
    args = ap.parse_args(argv)
    _check(ap, args)
    args.impl = _impl(ap, args)
    return args


def _check(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what argparse cannot: bounds, formats, files that must exist, pairs of
    options; fill in the suite and the vmlinux."""
    if args.smp < 1 or args.mem < 256:
        ap.error("--smp must be at least 1 and --mem at least 256")
    if not re.fullmatch(r"[0-9A-Za-z@:,\-]+", args.crashkernel):
        ap.error(f"--crashkernel {args.crashkernel!r} is not a crashkernel= value")
    if args.suite is None:
        args.suite = (KERNEL_SUITES[args.kernel_suite].userland if args.kernel_suite
                      else ARCHES[args.arch].default_suite)
    _kernel_image(ap, args)
    for path in (args.kernel_image, args.vmlinux, args.check_script, args.selftest):
        if path is not None and not path.is_file():
            ap.error(f"{path} does not exist")
    if args.dtb_marker is not None and not re.fullmatch(r"[\w.,:+-]+", args.dtb_marker):
        ap.error("--dtb-marker takes letters, digits and .,:+-_ only")
    bad = [o for o in args.save_option if not re.fullmatch(r"[\w=,.:/+-]+", o)]
    if bad:  # the guest's sh splits them, unquoted
        ap.error(f"--save-option {bad[0]!r}: letters, digits and =,.:/+-_ only")
    if args.load_limits is not None:
        m = re.fullmatch(r"(\d+),(\d+)", args.load_limits)
        if m is None:
            ap.error("--load-limits takes REBOOT,PANIC, two counts")
        args.load_limits = (int(m.group(1)), int(m.group(2)))


def _kernel_image(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--kernel-image (not with --kernel-suite) and its --vmlinux, made absolute."""
    if args.kernel_image is not None:
        if args.kernel_suite is not None:
            ap.error("--kernel-suite and --kernel-image exclude each other")
        args.kernel_image = args.kernel_image.resolve()
        args.vmlinux = (args.vmlinux or args.kernel_image.with_name("vmlinux")).resolve()
    elif args.vmlinux is not None:
        ap.error("--vmlinux goes with --kernel-image")


def _impl(ap: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """--impl STAGE=IMPL pairs (and --loader) as a dict, each checked against the stages."""
    choices = implementations()
    impl: dict[str, str] = {}
    for item in args.impl:
        stage, sep, name = item.partition("=")
        if not sep or stage not in choices or name not in choices[stage]:
            ap.error(f"--impl {item!r}: expected one of the STAGE=IMPL pairs in --help")
        impl[stage] = name
    if args.loader:
        impl["load"] = args.loader
    return impl


def implementations() -> dict[str, tuple[str, ...]]:
    """Stages with a choice of implementation, and the choices (from the stage table)."""
    out = {s.name: tuple(s.commands) for s in STAGES if len(s.commands) > 1}
    out["analyse"] = ANALYSERS
    return out


def _impl_help() -> str:
    lines = ["stage implementations (--impl STAGE=IMPL; by default kdumpctl-py wherever",
             "the wheel has the subcommand, else the first one listed):"]
    for stage, names in implementations().items():
        lines.append(f"  {stage}: {', '.join(names)}")
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="crash-cycle: %(levelname)s: %(message)s",
    )
    try:
        scale = float(os.environ.get("KDUMPCTL_VM_TIMEOUT_SCALE", "1"))
    except ValueError:
        scale = 1.0
    opts = Options(
        arch=ARCHES[args.arch], suite=SUITES[args.suite], out=args.out.resolve(),
        repo=REPO, smp=args.smp, mem_mib=args.mem, crashkernel=args.crashkernel,
        impl=args.impl, dump_level=args.dump_level, keep=args.keep,
        append=tuple(args.append), refresh=args.refresh, timeout_scale=scale,
        kernel_image=args.kernel_image, vmlinux=args.vmlinux, dtb_marker=args.dtb_marker,
        check_script=args.check_script, selftest=args.selftest, uefi=args.firmware == "uefi",
        kernel_suite=args.kernel_suite, busy=args.busy, whole_copy=args.whole_copy,
        crash=args.crash,
        gdb_index=args.gdb_index, load_limits=args.load_limits,
        save_options=tuple(args.save_option),
    )
    try:
        return run_cycle(opts)
    except HarnessError as e:  # raised before result.json could be written
        print(f"crash-cycle: error: {e}", file=sys.stderr)
        return EXIT_HARNESS
    except KeyboardInterrupt:
        return 130
