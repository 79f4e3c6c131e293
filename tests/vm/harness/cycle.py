"""One crash cycle from packages to report.json; the steps in the order they run."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import (
    aptsources,
    captureroot,
    debuginfo,
    disk,
    guestinit,
    initramfs,
    kernels,
    makedumpfile,
    memory,
    oops,
    oracles,
    wheel,
)
from .analysis import analyse, choose_analyser, find_vmcore
from .cache import cache_root
from .config import EXCLUDED_PACKAGES, Arch, Suite
from .console import split_console
from .debian import AptState, Kernel, Package, extract
from .errors import HarnessError, StageError
from .guestroot import Entry
from .qemu import Vm, VmSpec
from .report import Timings, guest_results, write_json
from .stages import EXIT_TIMEOUT_S, STAGES, by_name, choose

log = logging.getLogger("crash-cycle")

EXIT_OK, EXIT_HARNESS, EXIT_STAGE, EXIT_ANALYSIS = 0, 1, 3, 4
# Files and directories a run writes into --out (cleared first, so runs never mix).
OUTPUTS = (
    "console.log", "console-first.log", "console-capture.log", "qemu-stderr.log",
    "qemu-argv.txt", "status.json", "snapshot.tar.gz", "dumps", "results", "e2fsck.log",
    "timings.json", "result.json", "report.json", "analysis.log", "init.sh", "guest.env", "work",
)
READ_BACK = ["status.json", "snapshot.tar.gz", "dumps", "results"]
BUSY_SCRIPT = Path(__file__).with_name("busy.py")
MARKER_DTB_SCRIPT = Path(__file__).with_name("marker_dtb.py")


@dataclass(frozen=True)
class Options:
    """Everything the command line decides."""

    arch: Arch
    suite: Suite
    out: Path
    repo: Path
    smp: int
    mem_mib: int
    crashkernel: str
    # Stage name -> implementation, overriding the table's choice (--loader, --impl);
    # "analyse" picks the host-side analyser.
    impl: dict[str, str]
    dump_level: int | None
    keep: bool
    append: tuple[str, ...] = ()
    refresh: bool = False
    timeout_scale: float = 1.0
    # A kernel built elsewhere (--kernel-image): booted as is, no modules, its own vmlinux.
    kernel_image: Path | None = None
    vmlinux: Path | None = None
    dtb_marker: str | None = None  # --dtb-marker
    check_script: Path | None = None  # --check-script
    selftest: Path | None = None  # --selftest: a static binary run with the capture kernel loaded
    uefi: bool = False  # --firmware uefi
    # --kernel-suite: the Debian suite the kernel comes from, when not the userland's.
    kernel_suite: str | None = None
    busy: bool = False  # --busy: page cache, shmem, slab, anonymous and hugetlb pages
    whole_copy: bool = False  # --whole-copy: /proc/vmcore copied whole beside the dump
    crash: str = "sysrq"  # --crash: sysrq, or oops (harness/oops.py's module)
    gdb_index: bool = False  # --gdb-index: the vmlinux's gdb index made while the guest runs
    load_limits: tuple[int, int] | None = None  # --load-limits: (reboot, panic)
    save_options: tuple[str, ...] = ()  # --save-option: more arguments for `kdumpctl-py save`


@dataclass
class Run:
    """State gathered along the way, written to result.json at the end."""

    opts: Options
    timings: Timings = field(default_factory=Timings)
    result: dict[str, Any] = field(default_factory=dict)
    stage_status: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_cycle(opts: Options) -> int:
    """The whole cycle; returns the process exit status. Never leaves QEMU running."""
    st = Run(opts)
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    work = out / "work"
    work.mkdir()
    st.result.update(
        ok=False, arch=opts.arch.name, suite=opts.suite.name, smp=opts.smp,
        mem_mib=opts.mem_mib, crashkernel=opts.crashkernel, dump_level=opts.dump_level,
        extra_append=list(opts.append), dtb_marker=opts.dtb_marker, busy=opts.busy,
        whole_copy=opts.whole_copy, crash=opts.crash, load_limits=opts.load_limits,
        failed_stage=None,
        failure=None,
    )
    dbg: dict[str, Any] = {}
    status = EXIT_HARNESS
    try:
        status = _cycle(st, work, dbg)
    except StageError as e:
        st.result.update(failed_stage=e.stage, failure={"kind": e.kind, "detail": e.detail})
        log.error("%s", e)
        status = EXIT_STAGE
    except HarnessError as e:
        st.result["failure"] = {"kind": "harness", "detail": str(e)}
        log.error("%s", e)
        status = EXIT_ANALYSIS if st.result.get("failed_stage") == "analysis" else EXIT_HARNESS
    except KeyboardInterrupt:
        st.result["failure"] = {"kind": "interrupted", "detail": "interrupted"}
        status = 130
        raise
    finally:
        thread = dbg.get("thread")
        if isinstance(thread, threading.Thread) and status != 130:
            thread.join()  # leave the cache warm; an interrupted run does not wait
        st.result["stages"] = st.stage_status
        st.result["exit_status"] = status
        st.result["ok"] = status == EXIT_OK
        write_json(out / "timings.json", st.timings.as_dict())
        write_json(out / "result.json", st.result)
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    return status


def _roots(opts: Options, apt: AptState) -> tuple[list[str], list[str]]:
    """The guest's root packages, and the suite's optional ones it lacks (left out)."""
    roots = list(opts.suite.package_roots())
    missing = []
    for name in opts.suite.optional_roots:
        if apt.candidate(name) is None:
            log.warning("%s has no %s: the guest goes without it", opts.suite.name, name)
            missing.append(name)
        else:
            roots.append(name)
    return roots, missing


def _implementations(opts: Options, subs: frozenset[str]) -> dict[str, str]:
    """Each stage's implementation, with a warning for options the choice ignores."""
    impls = {s.name: choose(s, subs, opts.impl) for s in STAGES}
    if opts.dump_level is not None and impls["save"] not in ("kdumpctl-py", "makedumpfile"):
        log.warning("--dump-level applies to `kdumpctl-py save` and makedumpfile only; "
                    "save=%s ignores it", impls["save"])
    if opts.save_options and impls["save"] != "kdumpctl-py":
        log.warning("--save-option applies to `kdumpctl-py save` only; save=%s ignores it",
                    impls["save"])
    if impls["load"] == "kdumpctl-py" and "start" not in subs:
        log.warning("--loader kdumpctl-py, but this wheel has no `start` subcommand")
    return impls


def _option_files(opts: Options, cache: Path, kapt: AptState, kernel: Kernel) -> dict[str, Entry]:
    """The guest files the options ask for: --busy, --crash oops, --check-script,
    --selftest, --dtb-marker."""
    files = {}
    if opts.busy:
        files["etc/kdumpctl-vm/busy.py"] = Entry("file", perm=0o644, data=BUSY_SCRIPT.read_bytes())
    if opts.crash == "oops":
        files[oops.GUEST_PATH] = Entry("file", perm=0o644, data=oops.module(
            cache, kapt, kernel, opts.arch).read_bytes())
    if opts.check_script is not None:
        files["etc/kdumpctl-vm/check.py"] = Entry("file", perm=0o644,
                                                  data=opts.check_script.read_bytes())
    if opts.selftest is not None:
        files["etc/kdumpctl-vm/selftest"] = Entry("file", perm=0o755,
                                                  data=opts.selftest.read_bytes())
    if opts.dtb_marker is not None:
        files["etc/kdumpctl-vm/marker_dtb.py"] = Entry("file", perm=0o644,
                                                       data=MARKER_DTB_SCRIPT.read_bytes())
    return files


def _save_tools(opts: Options, apt: AptState, cache: Path, save: str,
                t: Timings) -> dict[str, Entry]:
    """What the save stage's implementation needs in the guest besides the packages:
    the suite's makedumpfile and its libraries for save=makedumpfile, else nothing."""
    if save != "makedumpfile":
        return {}
    with t.step("makedumpfile"):
        return makedumpfile.guest_files(apt, opts.arch, cache)


def _capture_initramfs(opts: Options, cache: Path, extracted: dict[Package, Path],
                       kernel: Kernel, kernel_dir: Path | None, project: wheel.ProjectWheel,
                       files: dict[str, Entry], out: Path) -> dict[str, Any]:
    """The capture kernel's own, smaller initramfs (captureroot.py) as `out`: the
    project's modules as bytecode and the first one's files but its site-packages; what
    it is made of, for result.json."""
    own, _external = captureroot.project_modules(project.unpacked)
    cbase = initramfs.build_capture(cache, opts.arch, opts.suite, extracted, kernel,
                                    kernel_dir, wheel.host_python(opts.repo), project.unpacked)
    cfiles = {p: e for p, e in files.items() if not p.startswith(wheel.DIST_PACKAGES)}
    cfiles.update(captureroot.bytecode(wheel.guest_files(project, own), opts.suite.python))
    coverlay = initramfs.build_overlay(cfiles, out.parent / "capture-overlay.cpio.xz", xz=True)
    initramfs.concatenate([cbase, coverlay], out)
    log.info("capture initramfs %.1f MiB (%.1f MiB unpacked)", out.stat().st_size / 2**20,
             (cbase.uncompressed + coverlay.uncompressed) / 2**20)
    return {"total_bytes": out.stat().st_size,
            "base_compressed": cbase.compressed, "base_uncompressed": cbase.uncompressed,
            "overlay_compressed": coverlay.compressed,
            "overlay_uncompressed": coverlay.uncompressed, "compression": "xz"}


def _boot_and_read_back(st: Run, spec: VmSpec) -> Path:
    """Run the guest, read its disk back (even after a failed stage: the logs are on it),
    and find the vmcore it saved."""
    failure: StageError | None = None
    with st.timings.step("vm"):
        try:
            _run_guest(st, spec)
        except StageError as e:
            failure = e
    try:
        _collect(st, spec.disk)
    except HarnessError as e:
        if failure is None:
            raise
        log.warning("reading the dump disk back failed too: %s", e)
    if failure is not None:
        raise failure
    out = st.opts.out
    vmcore = find_vmcore(out / "dumps")
    if vmcore is None:
        raise StageError("save", "failed", "the guest reported success but no vmcore is on "
                         "the disk", "")
    st.result["vmcore"] = str(vmcore.relative_to(out))
    st.result["vmcore_bytes"] = vmcore.stat().st_size
    st.result["failed_stage"] = None
    return vmcore


def _cycle(st: Run, work: Path, dbg: dict[str, Any]) -> int:
    opts, t, res = st.opts, st.timings, st.result
    cache = cache_root()
    res["cache"] = str(cache)

    with t.step("apt-update"):
        mirrors = aptsources.find_mirrors(aptsources.machine_entries())
        apt = AptState(cache, opts.suite.name, opts.arch, mirrors)
        apt.update(force=opts.refresh)
        kapt = apt
        if opts.kernel_suite not in (None, opts.suite.name):
            kapt = kernels.apt_state(cache, opts.kernel_suite, opts.arch, mirrors)
            kapt.update(force=opts.refresh)
    custom = opts.kernel_image
    with t.step("resolve"):
        kernel = kapt.kernel() if custom is None else custom_kernel(custom, opts.arch)
        kernel_pkgs = kernels.kernel_parts(kapt, kernel) if custom is None else []
        roots, missing_optional = _roots(opts, apt)
        closure = apt.resolve(roots)
        kept = [p for p in closure if p.name not in EXCLUDED_PACKAGES]
        borrowed = _borrowed_kexec_tools(opts, cache, mirrors, missing_optional)
    res["kernel"] = {"package": kernel.image.name, "version": kernel.image.version,
                     "release": kernel.release, "suite": kapt.suite,
                     "parts": [p.key for p in kernel_pkgs]}
    if custom is not None:
        res["kernel"]["image"] = str(custom)
    res["packages"] = [p.key for p in kept]
    res["packages_left_out"] = sorted(p.name for p in closure if p not in kept)
    res["optional_missing"] = missing_optional
    if borrowed is not None:
        res["kexec_tools_from"] = {"suite": borrowed[0].suite, "package": borrowed[1].key}
    log.info("kernel %s (%s), %d packages", kernel.release, kernel.image.version, len(kept))

    if custom is None:
        _start_vmlinux_fetch(kapt, kernel, cache, t, dbg, opts.arch, opts.gdb_index)
    else:
        dbg["path"] = opts.vmlinux

    with t.step("download"):
        debs = apt.download(kept, cache / "debs" / f"{opts.suite.name}-{opts.arch.debian}")
        kdebs = kapt.download(kernel_pkgs, cache / "debs" / f"{kapt.suite}-{opts.arch.debian}")
    with t.step("extract"):
        kernel_dir = kernels.kernel_tree(cache, kernel, kdebs) if custom is None else None
        extracted = {p: extract(debs[p], p, cache) for p in kept}
        if borrowed is not None:
            kt_apt, kt = borrowed
            kt_deb = kt_apt.download([kt], cache / "debs" / f"{kt_apt.suite}-{opts.arch.debian}")
            extracted[kt] = extract(kt_deb[kt], kt, cache)
    vmlinuz = (kernels.boot_image(kernel_dir, kernel.release) if kernel_dir is not None
               else custom)
    assert vmlinuz is not None
    boot_name = vmlinuz.name if kernel_dir is not None else f"vmlinuz-{kernel.release}"
    with t.step("initramfs-base"):
        base = initramfs.build_base(cache, opts.arch, opts.suite.name, extracted, kernel,
                                    kernel_dir)
    with t.step("wheel"):
        project = wheel.build(opts.repo, work)
        subs = wheel.subcommands(project, opts.repo)
    res["kdumpctl_py_subcommands"] = sorted(subs)
    res["wheel"] = project.path.name if project else None

    impls = _implementations(opts, subs)
    analyser = choose_analyser(subs, opts.impl.get("analyse"))
    res["implementations"] = {**impls, "analyse": analyser}
    res["loader"] = impls["load"]

    tools = _save_tools(opts, apt, cache, impls["save"], t)
    with t.step("initramfs-overlay"):
        modules = [m["path"] for m in base.info["modules"]]
        init_text = guestinit.render_init(impls)
        (opts.out / "init.sh").write_text(init_text)
        env = guestinit.render_env(_guest_env(opts, kernel, modules, boot_name))
        (opts.out / "guest.env").write_text(env)
        files = {
            "init": Entry("file", perm=0o755, data=init_text.encode()),
            "etc/kdumpctl-vm/env": Entry("file", perm=0o644, data=env.encode()),
            "boot": Entry("symlink", target="mnt/boot"),
            "results": Entry("dir"),
            **wheel.guest_files(project),
            **_option_files(opts, cache, kapt, kernel),
            **tools,
        }
        overlay = initramfs.build_overlay(files, work / "overlay.cpio.gz")
        initrd = work / "initrd.img"
        initramfs.concatenate([base, overlay], initrd)
    # The capture kernel's own, smaller initramfs (captureroot.py); without a wheel
    # there is nothing to select for, and the capture kernel gets the first one.
    capture_initrd = work / f"initrd.img-{kernel.release}"
    capture: dict[str, Any] = {}
    if project is None:
        shutil.copy(initrd, capture_initrd)
    else:
        with t.step("initramfs-capture"):
            capture = _capture_initramfs(opts, cache, extracted, kernel, kernel_dir, project,
                                         files, capture_initrd)
    res["initramfs"] = {
        "total_bytes": initrd.stat().st_size,
        "base_compressed": base.compressed,
        "base_uncompressed": base.uncompressed,
        "overlay_compressed": overlay.compressed,
        "overlay_uncompressed": overlay.uncompressed,
        "builtin_modules": base.info["builtin_modules"],
        "modules": modules,
        "capture": capture,
    }
    log.info("initramfs %.1f MiB (%.1f MiB unpacked)", initrd.stat().st_size / 2**20,
             (base.uncompressed + overlay.uncompressed) / 2**20)

    with t.step("disk"):
        image = work / "disk.img"
        content = work / "disk-root"
        (content / "boot").mkdir(parents=True)
        (content / "dumps").mkdir()
        shutil.copy(vmlinuz, content / "boot" / boot_name)
        shutil.copy(capture_initrd, content / "boot" / capture_initrd.name)
        config = (kernel_dir / "boot" / f"config-{kernel.release}" if kernel_dir is not None
                  else None)
        if opts.load_limits is not None and config is not None and config.is_file():
            shutil.copy(config, content / "boot" / config.name)
        disk.make(image, content, _disk_mib(opts))
        shutil.rmtree(content)

    spec = VmSpec(arch=opts.arch, kernel=vmlinuz, initrd=initrd, append=_first_append(opts),
                  disk=image, mem_mib=opts.mem_mib, smp=opts.smp, uefi=opts.uefi)
    res["firmware"] = "uefi" if opts.uefi else "none"
    res["first_append"] = spec.append
    res["capture_append"] = _capture_append(opts)
    vmcore = _boot_and_read_back(st, spec)
    with t.step("vmlinux-wait"):
        fetched = dbg.get("fetched")
        if isinstance(fetched, threading.Event):
            fetched.wait()
    if "error" in dbg:
        res["failed_stage"] = "analysis"
        raise dbg["error"]
    res["vmlinux"] = str(dbg["path"])
    with t.step("analysis"):
        res["failed_stage"] = "analysis"
        report = analyse(analyser, vmcore, dbg["path"], opts.repo, project,
                         opts.out / "analysis.log")
        res["failed_stage"] = None
    write_json(opts.out / "report.json", report)
    res["analyser"] = analyser
    log.info("dump saved and analysed: %s", opts.out / "report.json")
    return EXIT_OK


def _borrowed_kexec_tools(opts: Options, cache: Path, mirrors: aptsources.Mirrors,
                          missing: list[str]) -> tuple[AptState, Package] | None:
    """kexec-tools from the arch's `kexec_tools_suite` when the guest's suite builds none
    (trixie for riscv64: forky's), for `--loader kexec-tools`; its libraries must be the
    guest's (the initramfs check says so if not)."""
    suite = opts.arch.kexec_tools_suite
    if "kexec-tools" not in missing or suite is None:
        return None
    kt_apt = kernels.apt_state(cache, suite, opts.arch, mirrors)
    kt_apt.update(force=opts.refresh)
    kt = kt_apt.candidate("kexec-tools")
    if kt is None:
        log.warning("%s has no kexec-tools for %s either", suite, opts.arch.debian)
        return None
    log.info("kexec-tools %s from %s", kt.version, suite)
    return kt_apt, kt


def custom_kernel(image: Path, arch: Arch) -> Kernel:
    """A --kernel-image as a Kernel: its release from the banner in the (uncompressed) Image."""
    data = image.read_bytes()
    m = re.search(rb"Linux version (\S+) \(", data)
    if m is None:
        raise HarnessError(f"{image} has no 'Linux version' banner: not an uncompressed kernel")
    digest = hashlib.sha256(data).hexdigest()[:16]
    return Kernel(image=Package("custom-kernel", digest, arch.debian),
                  release=m.group(1).decode())


def _start_vmlinux_fetch(apt: AptState, kernel: Kernel, cache: Path, t: Timings,
                         dbg: dict[str, Any], arch: Arch, gdb_index: bool) -> None:
    """Fetch the -dbg vmlinux while the guest runs (it is the largest download), then,
    with `gdb_index`, give it the index crash starts from (oracles.with_gdb_index), on the
    core the single-threaded guest leaves idle; `fetched` is set once the vmlinux is there."""
    fetched = threading.Event()

    def fetch() -> None:
        try:
            with t.step("vmlinux-fetch"):
                dbg["path"] = debuginfo.vmlinux(apt, kernel, cache)
        except HarnessError as e:
            dbg["error"] = e
        except Exception as e:  # keep the main thread's report intact
            dbg["error"] = HarnessError(f"fetching the vmlinux failed: {e!r}")
        fetched.set()
        if gdb_index and "path" in dbg:
            try:
                with t.step("gdb-index"):
                    oracles.with_gdb_index(dbg["path"], arch)
            except (HarnessError, OSError) as e:  # crash makes it itself when it starts
                log.warning("no gdb index for %s: %s", dbg["path"], e)

    thread = threading.Thread(target=fetch, name="vmlinux", daemon=True)
    dbg["thread"], dbg["fetched"] = thread, fetched
    thread.start()


def _guest_env(opts: Options, kernel: Kernel, modules: list[str],
               boot_name: str) -> dict[str, str]:
    return {
        "KREL": kernel.release,
        "KERNEL": f"/boot/{boot_name}",
        "INITRD": f"/boot/initrd.img-{kernel.release}",
        "CAPTURE_APPEND": _capture_append(opts),
        "MODULES": " ".join(modules),
        "KEXEC_TOOLS_ARGS": " ".join(opts.arch.kexec_tools_args),
        "KDUMPCTL_PY": "kdumpctl-py --debug",
        "DTB_MARKER": opts.dtb_marker or "",
        "START_ARGS": "--dtb /tmp/capture.dtb" if opts.dtb_marker else "",
        "CHECK_SCRIPT": "/etc/kdumpctl-vm/check.py" if opts.check_script else "",
        "SELFTEST": "/etc/kdumpctl-vm/selftest" if opts.selftest else "",
        "DUMP_LEVEL_ARGS": f"--dump-level {opts.dump_level}" if opts.dump_level is not None
        else "",
        "SAVE_ARGS": " ".join(opts.save_options),
        "MDF_DUMP_LEVEL": str(31 if opts.dump_level is None else opts.dump_level),
        "BUSY": "1" if opts.busy else "",
        "WHOLE_COPY": "1" if opts.whole_copy else "",
        "CRASH": opts.crash,
        "OOPS_MODULE": f"/{oops.GUEST_PATH}",
        "LOAD_LIMITS": " ".join(map(str, opts.load_limits)) if opts.load_limits else "",
    }


def _first_append(opts: Options) -> str:
    # panic=-1: a panic that does not reach the capture kernel reboots at once, and
    # QEMU (-no-reboot) exits, so a lost guest is noticed instead of waited for.
    return " ".join([f"console={opts.arch.console}", f"crashkernel={opts.crashkernel}",
                     "panic=-1", *opts.append])


def _capture_append(opts: Options) -> str:
    """The usual kdump additions: one CPU, devices reset, no reboot loop.

    cma=0: Debian's arm64 config reserves 64 MiB of CMA at boot (CMA_SIZE_MBYTES),
    a quarter of a 256M crash region; without it the capture kernel fails with
    "Initramfs unpacking failed: write error". kdump-utils adds it for the same reason.
    """
    return " ".join([f"console={opts.arch.console}", "nr_cpus=1", "reset_devices", "cma=0",
                     *opts.arch.capture_extra, "panic=-1"])


def _disk_mib(opts: Options) -> int:
    # Room for a full ELF vmcore (at most the guest's RAM) plus kernel and initrd.
    return opts.mem_mib + 512


def _run_guest(st: Run, spec: VmSpec) -> None:
    """Boot, wait for every stage's marker in order, then for QEMU to exit."""
    opts, t = st.opts, st.timings
    out = opts.out
    scale = opts.timeout_scale
    with Vm(spec, out / "console.log", out / "qemu-stderr.log") as vm:
        con = vm.console
        pos = 0
        last = time.monotonic()
        try:
            for stage in STAGES:
                if stage.name == "crash":
                    pos, last = _wait_crash(st, vm, pos, last)
                    continue
                m = con.wait_marker(pos, {stage.name}, {"ok", "failed"},
                                    stage.timeout_s * scale)
                if m is None:
                    _lost(st, vm, stage.name, stage.timeout_s * scale)
                assert m is not None
                t.stage(stage.name, m.at - last)
                st.stage_status[stage.name] = {"status": m.status, "rc": m.rc,
                                               "seconds": round(m.at - last, 2)}
                last, pos = m.at, m.end
                if m.status == "failed" and stage.required:
                    raise StageError(stage.name, "failed", f"exit status {m.rc} in the guest",
                                     con.tail())
            rc = vm.wait_exit(EXIT_TIMEOUT_S * scale)
            t.stage("reboot", time.monotonic() - last)
            if rc is None:
                log.warning("QEMU did not exit after the guest's reboot -f; stopping it")
        except StageError:
            vm.wait_exit(60)  # the guest powers itself off after a failed stage
            raise
        finally:
            vm.stop()
            _split(out)
            st.result["memory"] = memory.parse((out / "console-capture.log").read_bytes())
            for line in memory.table(st.result["memory"]):
                log.info("capture memory: %s", line)


def _wait_crash(st: Run, vm: Vm, pos: int, last: float) -> tuple[int, float]:
    """From the crash trigger to the capture kernel's first console line."""
    stage = by_name("crash")
    con = vm.console
    m = con.wait_marker(pos, {"crash"}, {"begin"}, stage.timeout_s * st.opts.timeout_scale)
    if m is None:
        _lost(st, vm, "crash", stage.timeout_s * st.opts.timeout_scale)
    assert m is not None
    boot = by_name("capture-boot")
    found = con.wait_banner(m.end, boot.timeout_s * st.opts.timeout_scale)
    if found is None:
        _lost(st, vm, "crash", boot.timeout_s * st.opts.timeout_scale,
              what="the capture kernel's boot banner after the panic")
    assert found is not None
    match, at = found
    if b"KDUMPCTL-VM: crash" in match.group(0):
        raise StageError("crash", "failed", "writing c to /proc/sysrq-trigger returned; "
                         "no panic", con.tail())
    st.timings.stage("crash", at - last)
    st.stage_status["crash"] = {"status": "ok", "rc": None, "seconds": round(at - last, 2)}
    return match.end(), at


def _lost(st: Run, vm: Vm, stage: str, timeout: float, what: str | None = None) -> None:
    con = vm.console
    what = what or f"the {stage!r} marker"
    if con.eof or vm.proc.poll() is not None:
        kind, detail = "lost", (f"QEMU exited (status {vm.wait_exit(10)}) before {what}: "
                                "the guest died or rebooted")
    else:
        kind, detail = "timeout", f"no {what} within {timeout:.0f} s"
    st.stage_status[stage] = {"status": kind}
    raise StageError(stage, kind, detail, con.tail())


def _split(out: Path) -> None:
    text = (out / "console.log").read_bytes() if (out / "console.log").exists() else b""
    first, capture = split_console(text)
    (out / "console-first.log").write_bytes(first)
    (out / "console-capture.log").write_bytes(capture)


def _collect(st: Run, image: Path) -> None:
    """Read the disk back (after a journal replay) into --out, whatever happened."""
    out = st.opts.out
    with st.timings.step("read-back"):
        st.result["e2fsck_status"] = disk.check(image, out / "e2fsck.log")
        staging = out / "work" / "read-back"
        present = disk.read_back(image, READ_BACK, staging)
        for name in present:
            shutil.move(str(staging / name), str(out / name))
    st.result["read_back"] = present
    st.result["guest_results"] = guest_results(out / "results")
    estimate = out / "results" / "first" / "estimate.out"
    if estimate.exists():
        try:
            st.result["estimate_needed"] = json.loads(estimate.read_text())["needed"]
        except (ValueError, KeyError):
            log.warning("estimate --json printed no `needed`: %s", estimate)
    for stage, info in st.result["guest_results"].items():
        if info["rc"] and stage in st.stage_status:
            st.stage_status[stage]["stderr_tail"] = info["stderr_tail"]
