"""What the capture kernel does, in order (`kdumpctl-py capture`):

kdump_pre (a non-zero exit skips the dump), mount the target, save
/proc/vmcore with the configured options, falling back to less filtering and
at last a plain copy when filtering fails (capture/fallback.py), with
failure_action dump_to_rootfs saving again on the root file system when the
target failed, retention, kdump_post with the status, the test result when the
command line carries a test id, unmount, then final_action, or failure_action
when not even the copy could be written. Every failure is caught and logged: the machine always
leaves the capture kernel by an action.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kdumpctl_py import journal
from kdumpctl_py.capture.record import Attempt, SaveRecord, summary
from kdumpctl_py.config.model import (
    Config,
    NfsTarget,
    SshTarget,
    Target,
    device_path,
    is_network,
)
from kdumpctl_py.errors import KdumpError
from kdumpctl_py.service import notify, retention, testid
from kdumpctl_py.service.target import (
    MOUNT_POINT,
    NETWORK_RESULTS,
    NFS_OPTIONS,
    ROUTE_WAIT_S,
    shown,
    under,
)

if TYPE_CHECKING:  # service.ssh (socket, subprocess) is imported for an ssh target only
    from kdumpctl_py.service.ssh import Remote


class Machine(Protocol):
    def run(self, argv: list[str]) -> int: ...
    def wait_for(self, path: str, seconds: float = ...) -> bool: ...
    def mount(self, fstype: str, device: str, options: str, mountpoint: str) -> None: ...
    def umount(self, mountpoint: str) -> None: ...
    def act(self, action: str) -> None: ...


@dataclass
class Outcome:
    saved: bool = False
    skipped: bool = False
    dump: str | None = None  # the dump's directory
    error: str | None = None
    action: str = ""
    retention: retention.Retention | None = None
    test_status: str | None = None
    log: list[str] = field(default_factory=list)
    record: SaveRecord | None = None  # how the dump was saved (save.json)


def run_capture(cfg: Config, machine: Machine, vmcore: str = "/proc/vmcore",
                cmdline: str = "", mountpoint: str = MOUNT_POINT,
                route_wait: float = ROUTE_WAIT_S) -> Outcome:
    out = Outcome()
    test_id = testid.from_cmdline(cmdline)
    if not _kdump_pre(cfg, machine, out, test_id):
        return _finish(out, machine)
    mounted = False
    dump_root = cfg.path
    remote = None
    try:
        if isinstance(cfg.target, SshTarget):
            from kdumpctl_py.service.ssh import Remote

            remote = Remote(cfg.target, cfg.sshkey, route_wait)
            _save_ssh(cfg, vmcore, remote, out)
        else:
            if cfg.target is not None:
                machine.mount(*mount_args(cfg.target, machine), mountpoint)
                mounted = True
                dump_root = under(mountpoint, cfg.path)
                if isinstance(cfg.target, NfsTarget):
                    _say_route(cfg.target.export.rpartition(":")[0].strip("[]"))
            _save(cfg, vmcore, dump_root, out)
    except Exception as e:  # whatever broke, the machine must leave by an action
        out.error = str(e) if isinstance(e, (KdumpError, OSError)) else \
            f"internal error: {type(e).__name__}: {e}"
        journal.event(f"saving the dump failed: {out.error}", notify.DUMP_FAILED, 3)
    # dump_to_rootfs before kdump_post and the test's result, so that both say whether a
    # dump was saved after all.
    rescued = not out.saved and _rescue(cfg, vmcore, out)
    if out.saved and cfg.keep and not rescued:
        _keep(cfg, remote, dump_root, out)
    if cfg.kdump_post:
        notify.status("running kdump_post")
        machine.run([*cfg.kdump_post, "0" if out.saved else "1"])
    # Where the first kernel finds the result: beside the dump on the target; on the
    # root file system for a network target, a target that could not be mounted, or a
    # dump saved there instead.
    on_target = (cfg.target is None or mounted) and not rescued
    _result(out, test_id, out.dump or dump_root if on_target and not is_network(cfg)
            else NETWORK_RESULTS,
            shown(cfg, out.dump or "", mountpoint) if out.saved else
            (out.error or "unknown failure"))
    if mounted:
        machine.umount(mountpoint)
    out.action = (cfg.final_action if out.saved or cfg.failure_action == "dump_to_rootfs"
                  else cfg.failure_action)
    return _finish(out, machine)


def _kdump_pre(cfg: Config, machine: Machine, out: Outcome, test_id: str | None) -> bool:
    """Run kdump_pre; False (the dump skipped, said and recorded) when it failed."""
    if not cfg.kdump_pre:
        return True
    notify.status("running kdump_pre")
    rc = machine.run(list(cfg.kdump_pre))
    if rc == 0:
        return True
    out.skipped = True
    out.action = cfg.final_action
    journal.event(f"kdump_pre {cfg.kdump_pre[0]} exited {rc}: dump skipped",
                  notify.DUMP_SKIPPED, 4)
    _result(out, test_id, cfg.path if cfg.target is None else NETWORK_RESULTS,
            f"kdump_pre exited {rc}, dump skipped")  # no target is mounted yet
    return False


def _keep(cfg: Config, remote: Remote | None, dump_root: str, out: Outcome) -> None:
    """Retention after a dump was saved; its failure is only a warning."""
    saved = os.path.basename(out.dump.rstrip("/")) if out.dump else None  # never deleted
    try:
        if remote is not None:
            from kdumpctl_py.service.ssh import apply_retention

            out.retention = apply_retention(remote, cfg.path, cfg.keep, saved)
            _report_retention(out.retention, remote.where(cfg.path))
        else:
            out.retention = retention.apply(dump_root, cfg.keep, saved)
            _report_retention(out.retention, dump_root)
    except (OSError, KdumpError) as e:
        journal.warn(f"retention under {dump_root} failed: {e}")


def _rescue(cfg: Config, vmcore: str, out: Outcome) -> bool:
    """failure_action dump_to_rootfs: the dump saved again under path on the root file
    system when the target failed; whether it was. (The action is final_action then,
    saved or not.)"""
    if cfg.failure_action != "dump_to_rootfs" or cfg.target is None:
        return False
    notify.status(f"saving again under {cfg.path} on the root file system")
    try:
        _save(cfg, vmcore, cfg.path, out,
              (Attempt("on the dump target", cfg.dump_level, out.error or "unknown failure"),))
    except Exception as e:  # whatever broke, the machine must leave by an action
        journal.event(f"saving to the root file system failed too: {e}",
                      notify.DUMP_FAILED, 3)
    return out.saved


def _save(cfg: Config, vmcore: str, dump_root: str, out: Outcome,
          earlier: tuple[Attempt, ...] = ()) -> None:
    from dataclasses import asdict

    from kdumpctl_py.capture.fallback import save_with_fallback
    from kdumpctl_py.capture.save import SaveOptions
    from kdumpctl_py.capture.vmcore import firmware_memory_of
    from kdumpctl_py.facts.view import SystemView

    notify.status(f"saving {vmcore} under {dump_root}")
    options = SaveOptions(dump_level=cfg.dump_level, compress=cfg.compress,
                          zlib_engine=cfg.zlib_engine, flat=cfg.flat,
                          format=cfg.format, threads=cfg.threads, progress=False,
                          memory_limit=cfg.memory_limit,
                          firmware=firmware_memory_of(SystemView()))
    result, record = save_with_fallback(vmcore, dump_root, options, earlier)
    assert result.directory is not None
    out.saved, out.dump, out.error, out.record = True, result.directory, None, record
    how = summary(asdict(record))
    lowered = bool(record.failed) or not record.complete or bool(record.warnings)
    journal.event(f"dump saved in {result.directory} ({how}): {result.pages_dumped} of "
                  f"{result.pages_total} pages, {result.bytes_out} bytes, "
                  f"{result.seconds:.1f} s, peak memory {result.peak_rss >> 20} MiB of "
                  f"{options.memory_limit >> 20} MiB", notify.DUMP_SAVED, 4 if lowered else 6,
                  dump_path=os.path.join(result.directory, record.vmcore),
                  dump_bytes=str(result.bytes_out),
                  dump_level=str(record.level_written if record.level_written is not None
                                 else "copy"),
                  dump_level_asked=str(record.level_asked), dump_complete=str(int(record.complete)),
                  dump_fallback="; ".join(f"{a.how}: {a.error}" for a in record.failed))


def mount_args(target: Target | NfsTarget, machine: Machine) -> tuple[str, str, str]:
    """(fstype, device, options) of a target to mount, once its device is there."""
    if isinstance(target, NfsTarget):
        notify.status(f"mounting {target.export}")
        return "nfs4", target.export, ",".join(filter(None, (NFS_OPTIONS, target.options)))
    dev = device_path(target.device)
    notify.status(f"waiting for {target.device}")
    if not machine.wait_for(dev):
        raise KdumpError(f"the target {target.device} did not appear ({dev})")
    return target.fstype, target.device, ""


def _save_ssh(cfg: Config, vmcore: str, remote: Remote, out: Outcome) -> None:
    from kdumpctl_py.capture.save import SaveOptions
    from kdumpctl_py.capture.vmcore import firmware_memory_of
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.service.ssh import save_with_fallback_over_ssh

    notify.status(f"saving {vmcore} to {remote.where(cfg.path)}")
    remote.wait_for_server()
    _say_route(remote.target.host)
    options = SaveOptions(dump_level=cfg.dump_level, compress=cfg.compress,
                          zlib_engine=cfg.zlib_engine, flat=True,
                          format=cfg.format, threads=cfg.threads, progress=False,
                          firmware=firmware_memory_of(SystemView()))
    dump = save_with_fallback_over_ssh(remote, cfg.path, vmcore, options)
    out.saved, out.dump, out.error = True, remote.where(dump.directory), None
    out.record = dump.record
    note = ("" if not dump.vmcore.startswith("vmcore.flat") else
            "; kdumpctl-py is not installed there (or could not reassemble it): "
            "vmcore.flat stays flattened, run kdumpctl-py reassemble on it")
    journal.event(f"dump saved in {out.dump}: {dump.vmcore}, {dump.bytes_sent} bytes sent"
                  + note, notify.DUMP_SAVED, dump_path=f"{out.dump}/{dump.vmcore}",
                  dump_bytes=str(dump.bytes_sent))


def _say_route(host: str) -> None:
    """The journal names the interface and address the server is reached through, as
    `status` did in the first kernel."""
    from kdumpctl_py.facts.view import SystemView
    from kdumpctl_py.service.check import route_to

    route = route_to(host, SystemView())
    journal.event(f"the server {host} is reached through {route}" if route else
                  f"no route to the server {host} is known here", priority=6 if route else 4)


def _report_retention(r: retention.Retention, directory: str) -> None:
    if r.deleted:
        journal.event(f"keep: deleted {len(r.deleted)} older dumps under {directory}: "
                      + ", ".join(r.deleted))
    if r.incomplete:
        journal.warn(f"keep: {len(r.incomplete)} incomplete dumps kept, not counted: "
                     + ", ".join(r.incomplete))


def _result(out: Outcome, test_id: str | None, directory: str, detail: str) -> None:
    if test_id is None:
        return
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        out.test_status = testid.write_result(directory, test_id, out.saved, detail)
    except OSError as e:
        journal.event(f"test {test_id}: cannot write the result under {directory}: {e}",
                      priority=3)


def _finish(out: Outcome, machine: Machine) -> Outcome:
    notify.status(f"{'dump saved' if out.saved else 'no dump saved'}; {out.action}")
    machine.act(out.action)
    return out
