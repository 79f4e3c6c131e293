"""`kdumpctl-py propagate`: the ssh target's key, made if missing and installed on the
server as ssh-copy-id installs one, so that the capture kernel can log in alone."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdumpctl_py.cli import Commands


def register(sub: Commands) -> None:
    p = sub.add_parser("propagate", help="make the ssh target's key if missing (ed25519, no "
                       "passphrase) and install it on the server, asking for the password once")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import subprocess

    from kdumpctl_py.cli import open_view
    from kdumpctl_py.config import read_config
    from kdumpctl_py.config.model import SshTarget
    from kdumpctl_py.errors import KdumpError, UsageError
    from kdumpctl_py.service.check import check_target
    from kdumpctl_py.service.ssh import install_key_argv, key_problem, keygen_argv

    if args.sysroot:
        raise UsageError("propagate changes this machine and the server; it takes no --sysroot")
    view = open_view(args)
    cfg = read_config(view)
    if not isinstance(cfg.target, SshTarget):
        raise UsageError(f"{cfg.source or 'the configuration'} has no ssh target; "
                         "propagate installs an ssh key")
    if os.path.exists(cfg.sshkey):
        print(f"{cfg.sshkey}: the key exists")
    else:
        os.makedirs(os.path.dirname(cfg.sshkey), mode=0o700, exist_ok=True)
        if subprocess.run(keygen_argv(cfg.sshkey), check=False).returncode != 0:
            raise KdumpError(f"ssh-keygen could not make {cfg.sshkey}")
        print(f"{cfg.sshkey}: made a new ed25519 key without a passphrase")
    problem = key_problem(cfg.sshkey)
    if problem:  # installing it on the server would not make ssh use it
        raise KdumpError(problem)
    before = check_target(cfg, view)
    assert before is not None
    if before.ok:
        print(f"the key already works: {before.detail}")
        return 0
    with open(f"{cfg.sshkey}.pub", encoding="ascii") as f:
        public = f.read().strip()
    where = f"{cfg.target.user}@{cfg.target.host}"
    print(f"installing {cfg.sshkey}.pub on {where} (ssh asks for the password)", flush=True)
    rc = subprocess.run(install_key_argv(cfg.target, cfg.sshkey, public), check=False).returncode
    if rc != 0:
        raise KdumpError(f"installing the key on {where} failed (ssh exit status {rc})")
    after = check_target(cfg, view)
    assert after is not None
    if not after.ok:
        raise KdumpError(f"the key was installed but does not work yet: {after.detail}")
    print(f"the key works: {after.detail}")
    return 0
