"""`kdumpctl-py test [--yes]`: crash this machine on purpose and check, after the reboot,
that the capture kernel saved a dump (Fedora's `kdumpctl test`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands

SYSRQ_TRIGGER = "/proc/sysrq-trigger"


def register(sub: Commands) -> None:
    p = sub.add_parser("test", help="reload with a test id, then crash the machine on "
                       "purpose; status shows the result after the reboot")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=run)


def crash_now(trigger: str = SYSRQ_TRIGGER) -> None:
    """The acting part: flush the disks, then panic through magic SysRq."""
    os.sync()
    with open(trigger, "w") as f:
        f.write("c")


def run(args: argparse.Namespace) -> int:
    from kdumpctl_py import journal
    from kdumpctl_py.cli import open_view
    from kdumpctl_py.cli.load import carry_out, plan_from_args
    from kdumpctl_py.config import read_config
    from kdumpctl_py.errors import KdumpError
    from kdumpctl_py.service import notify, testid
    from kdumpctl_py.service.target import first_kernel_results

    view = open_view(args, probe=True)
    if not view.kexec_crash_size:
        raise KdumpError("no memory is reserved for a capture kernel: a crash now would "
                         "just reboot (kdumpctl-py status says why)")
    cfg = read_config(view)
    test_id = testid.new_id()
    plan = plan_from_args(view, extra_append=(f"{testid.PARAM}={test_id}",))
    if not args.yes:
        print("kdumpctl-py test crashes this machine now: it reboots through the capture "
              "kernel and loses everything not saved.")
        print("Type YES to go on: ", end="", flush=True)
        if sys.stdin.readline().strip() != "YES":
            print("test cancelled; nothing changed")
            return 1
    record = testid.record(test_id, first_kernel_results(cfg, view) or cfg.path)
    try:
        carry_out(view, plan, replace=True)
    except BaseException:
        testid.forget(test_id)  # no crash happens: no test is pending
        raise
    journal.event(f"test {test_id}: crashing on purpose; the result is in "
                  f"{record} and, after the reboot, kdumpctl-py status",
                  notify.TEST_STARTED, test_id=test_id)
    crash_now()
    raise KdumpError("writing c to /proc/sysrq-trigger returned: the kernel did not panic")
