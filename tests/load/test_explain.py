"""A failed load says why and what to do next, and what is loaded now (issue 11)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from kdumpctl_py.facts.view import SystemView
from kdumpctl_py.load.explain import explain
from kdumpctl_py.load.syscalls import KexecCallError
from tests.snapshots import make_snapshot


def view(tmp_path: Path, **files: str) -> SystemView:
    base = {"/sys/kernel/kexec_crash_loaded": "0\n", "/sys/kernel/kexec_crash_size": "268435456\n"}
    base.update({"/" + k.replace("__", "/"): v for k, v in files.items()})
    return SystemView(make_snapshot(tmp_path, "aarch64", base))


@pytest.mark.parametrize("err,call,files,words", [
    (errno.EPERM, "kexec_load", {"proc__sys__kernel__kexec_load_disabled": "1\n"},
     "kernel.kexec_load_disabled=1"),
    (errno.EPERM, "kexec_load", {"sys__kernel__security__lockdown":
                                 "none [integrity] confidentiality\n"}, "use --method file"),
    (errno.EPERM, "kexec_file_load", {"sys__kernel__security__lockdown":
                                      "none [integrity] confidentiality\n"}, "signed kernel"),
    (errno.ENODATA, "kexec_file_load", {}, "not signed"),
    (errno.EKEYREJECTED, "kexec_file_load", {}, "signature was rejected"),
    (errno.ENOKEY, "kexec_file_load", {}, "keyrings"),
    (errno.EADDRNOTAVAIL, "kexec_file_load", {}, "crash region (256 MiB) is too small"),
    (errno.ENOMEM, "kexec_load", {}, "kdumpctl-py estimate"),
    (errno.EBUSY, "kexec_load", {}, "try again"),
    (errno.ENOSYS, "kexec_file_load", {}, "built without kexec_file_load"),
    (errno.ENOEXEC, "kexec_file_load", {}, "does not recognise this image"),
    (errno.EINVAL, "kexec_load", {}, "rejected the kexec_load arguments"),
])
def test_each_errno_names_the_next_step(tmp_path: Path, err: int, call: str,
                                        files: dict[str, str], words: str) -> None:
    message = str(explain(KexecCallError(err, call), view(tmp_path, **files), "classic"))
    assert words in message
    assert "\n" not in message
    assert message.endswith("no capture kernel is loaded")


def test_says_a_kernel_is_still_loaded(tmp_path: Path) -> None:
    v = view(tmp_path, sys__kernel__kexec_crash_loaded="1\n")
    assert str(explain(KexecCallError(errno.EBUSY, "kexec_load"), v, "classic")).endswith(
        "a capture kernel is loaded")


def test_lockdown_names_the_refused_dtb(tmp_path: Path) -> None:
    v = view(tmp_path, sys__kernel__security__lockdown="none [integrity] confidentiality\n")
    message = str(explain(KexecCallError(errno.EPERM, "kexec_file_load"), v, "extended",
                          "/etc/kdumpctl-py/capture.dtb"))
    assert "device tree /etc/kdumpctl-py/capture.dtb" in message
    assert "--method file" in message
    # Without a DTB (the plain call) the kernel image is what lockdown refused.
    plain = str(explain(KexecCallError(errno.EPERM, "kexec_file_load"), v, "file"))
    assert "device tree" not in plain and "signed kernel" in plain


def test_a_refusal_without_lockdown_names_both_limits(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    message = str(explain(KexecCallError(errno.EPERM, "kexec_file_load"), view(tmp_path), "file"))
    assert "kernel.kexec_load_limit_panic" in message
    assert "kernel.kexec_load_limit_reboot" in message
