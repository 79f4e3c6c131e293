"""Boot-loader edits on realistic layouts: Fedora BLS, Debian GRUB, kernel-install."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kdumpctl_py.errors import KdumpError, UsageError
from kdumpctl_py.plan.bootloader import (
    edit_bls_entry,
    edit_default_grub,
    plan_reset,
    remove_crashkernel,
    set_crashkernel,
    words,
)
from tests.builders import DEBIAN_GRUB, FEDORA_ENTRY, RELEASE, debian

RESCUE_ENTRY = """\
title Fedora Linux (0-rescue-2f0e1d2c3b4a) 39 (Workstation Edition)
version 0-rescue-2f0e1d2c3b4a
linux /vmlinuz-0-rescue-2f0e1d2c3b4a
initrd /initramfs-0-rescue-2f0e1d2c3b4a.img
options root=UUID=6d1a5c6e-7c56-4bd1-a7b7-9c0d3e0e59a1 ro rootflags=subvol=root rhgb quiet
grub_users $grub_users
grub_arg --unrestricted
grub_class fedora
"""
VALUE = "2G-64G:256M,64G-:512M"


def fedora(root: Path) -> Path:
    entries = root / "boot/loader/entries"
    entries.mkdir(parents=True)
    (entries / f"2f0e1d2c3b4a-{RELEASE}.conf").write_text(FEDORA_ENTRY)
    (entries / "2f0e1d2c3b4a-0-rescue.conf").write_text(RESCUE_ENTRY)
    return entries


# -- the command line itself ----------------------------------------------------

@pytest.mark.parametrize("before,after", [
    ("ro quiet", "ro quiet crashkernel=V"),
    ("ro quiet\n", "ro quiet crashkernel=V\n"),
    ("", "crashkernel=V"),
    ("ro  crashkernel=1G   quiet", "ro  crashkernel=V   quiet"),
    ("crashkernel=1G,high ro crashkernel=128M,low", "crashkernel=V ro"),
    ("crashkernel=1G crashkernel=2G quiet", "crashkernel=V quiet"),
    ('ro "dyndbg=file x +p" -- single', 'ro "dyndbg=file x +p" crashkernel=V -- single'),
    ('a="x crashkernel=1G y" b', 'a="x crashkernel=1G y" b crashkernel=V'),
])
def test_set_crashkernel(before: str, after: str) -> None:
    assert set_crashkernel(before, "V") == after


CMDLINE_WORDS = st.sampled_from(["ro", "quiet", "root=UUID=1-2", '"a b"', 'x="y z"', "--",
                                 "crashkernel=1G", "crashkernel=2G,high", "crashkernel=0,low",
                                 "kdump.crashkernel=9", "rd.lvm=0"])


@given(st.lists(CMDLINE_WORDS, max_size=8), st.sampled_from([" ", "  ", "\t"]),
       st.sampled_from(["", "\n", " "]))
def test_set_keeps_every_other_word(items: list[str], sep: str, end: str) -> None:
    # refused: a crashkernel= inside a word after "--" would still be the kernel's
    assume("--" not in items or "kdump.crashkernel=9" not in items[items.index("--"):])
    before = sep.join(items) + end
    after = set_crashkernel(before, VALUE)
    others = [w for w in (before[s:e] for s, e in words(before)) if not w.startswith("crashk")]
    new = [after[s:e] for s, e in words(after)]
    assert [w for w in new if not w.startswith("crashk")] == others
    assert [w for w in new if w.startswith("crashk")] == [f"crashkernel={VALUE}"]
    assert after.endswith(end)
    assert set_crashkernel(after, VALUE) == after
    removed = remove_crashkernel(before)
    assert [removed[s:e] for s, e in words(removed)] == others


# -- the files ------------------------------------------------------------------

def test_fedora_bls_entry_changes_one_line() -> None:
    new = edit_bls_entry(FEDORA_ENTRY, VALUE)
    old_lines, new_lines = FEDORA_ENTRY.splitlines(), new.splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines, strict=True) if a != b]
    assert changed == [(old_lines[4], old_lines[4].replace("1G-4G:192M,4G-64G:256M,64G-:512M",
                                                           VALUE))]
    rescue = edit_bls_entry(RESCUE_ENTRY, VALUE).splitlines()[4]
    assert rescue.endswith(f"quiet crashkernel={VALUE}")


def test_bls_entry_without_options_is_refused() -> None:
    """Found by review: it got "options crashkernel=1G", and GRUB, which gives an entry
    without options $default_kernelopts (root= among them), would then boot it with
    crashkernel= alone."""
    with pytest.raises(KdumpError, match="no options line"):
        edit_bls_entry("title x\nlinux /vmlinuz", "1G")


def test_bls_kernelopts_is_refused() -> None:
    with pytest.raises(KdumpError, match="kernelopts"):
        edit_bls_entry("linux /vmlinuz-6\noptions $kernelopts\n", "1G")


def test_debian_grub_changes_only_grub_cmdline_linux() -> None:
    new = edit_default_grub(DEBIAN_GRUB, VALUE)
    assert new == DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""',
                                      f'GRUB_CMDLINE_LINUX="crashkernel={VALUE}"')
    assert edit_default_grub(new, VALUE) == new


@pytest.mark.parametrize("before,after", [
    # crashkernel= in _DEFAULT comes later on the line and wins: it is changed there.
    ('GRUB_CMDLINE_LINUX_DEFAULT="quiet crashkernel=1G"\nGRUB_CMDLINE_LINUX="ro"\n',
     'GRUB_CMDLINE_LINUX_DEFAULT="quiet crashkernel=V"\nGRUB_CMDLINE_LINUX="ro"\n'),
    ('GRUB_CMDLINE_LINUX="crashkernel=2G"\nGRUB_CMDLINE_LINUX_DEFAULT="crashkernel=1G"\n',
     'GRUB_CMDLINE_LINUX=""\nGRUB_CMDLINE_LINUX_DEFAULT="crashkernel=V"\n'),
    ("GRUB_CMDLINE_LINUX='ro'  # keep\n", "GRUB_CMDLINE_LINUX='ro crashkernel=V'  # keep\n"),
    ("GRUB_CMDLINE_LINUX=ro\n", 'GRUB_CMDLINE_LINUX="ro crashkernel=V"\n'),
    ("export GRUB_CMDLINE_LINUX=\n", "export GRUB_CMDLINE_LINUX=crashkernel=V\n"),
    ('GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX="b"\n',
     'GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX="b crashkernel=V"\n'),
    ("GRUB_TIMEOUT=5", 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="crashkernel=V"\n'),
])
def test_default_grub(before: str, after: str) -> None:
    assert edit_default_grub(before, "V") == after


@pytest.mark.parametrize("text,why", [
    ('GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX quiet"\n', "expands"),
    ('GRUB_CMDLINE_LINUX="quiet\nsplash"\n', "continues on the next line"),
    ('GRUB_CMDLINE_LINUX+=" quiet"\n', "cannot follow"),
    ('[ -x /x ] && GRUB_CMDLINE_LINUX="quiet"\n', "cannot follow"),
    ('GRUB_CMDLINE_LINUX="quiet" ; echo\n', "unexpected"),
    ("GRUB_CMDLINE_LINUX=`cat /x`\n", "expands"),
    ("GRUB_CMDLINE_LINUX=a;b\n", "not a plain shell word"),
])
def test_default_grub_refusals(text: str, why: str) -> None:
    with pytest.raises(KdumpError, match=why):
        edit_default_grub(text, "V")


# -- finding the layout ---------------------------------------------------------

def test_plan_fedora_running_kernel(tmp_path: Path) -> None:
    entries = fedora(tmp_path)
    plan = plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False)
    assert plan.layout == "bls"
    assert [e.path for e in plan.edits] == [entries / f"2f0e1d2c3b4a-{RELEASE}.conf"]
    assert plan.edits[0].new == edit_bls_entry(FEDORA_ENTRY, VALUE)
    assert plan.edits[0].old == FEDORA_ENTRY.encode()
    assert plan.commands == ()


def test_plan_fedora_all_and_by_path(tmp_path: Path) -> None:
    fedora(tmp_path)
    assert len(plan_reset(tmp_path, VALUE, "ALL", RELEASE, run_tools=False).edits) == 2
    by_path = plan_reset(tmp_path, VALUE, "/boot/vmlinuz-0-rescue-2f0e1d2c3b4a", RELEASE, False)
    assert [e.path.name for e in by_path.edits] == ["2f0e1d2c3b4a-0-rescue.conf"]
    with pytest.raises(KdumpError, match="no boot entry .* for /boot/vmlinuz-9"):
        plan_reset(tmp_path, VALUE, "/boot/vmlinuz-9", RELEASE, run_tools=False)


def test_plan_grubby_on_the_live_system(tmp_path: Path) -> None:
    fedora(tmp_path)
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/sbin/grubby").write_text("#!/bin/sh\n")
    plan = plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=True)
    assert plan.layout == "grubby" and plan.edits == ()
    assert plan.commands == (("/usr/sbin/grubby", f"--update-kernel=/boot/vmlinuz-{RELEASE}",
                              f"--args=crashkernel={VALUE}"),)
    assert plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False).layout == "bls"


def test_plan_debian_grub(tmp_path: Path) -> None:
    grub = debian(tmp_path)
    live = plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=True)
    assert (live.layout, [e.path for e in live.edits]) == ("grub", [grub])
    assert live.commands == (("update-grub",),)
    offline = plan_reset(tmp_path, VALUE, "ALL", RELEASE, run_tools=False)
    assert offline.commands == () and "run update-grub inside" in offline.notes[0]
    with pytest.raises(UsageError, match="every kernel"):
        plan_reset(tmp_path, VALUE, "/boot/vmlinuz-6.1.0-13-amd64", RELEASE, run_tools=False)


def test_plan_fedora_grub_regeneration(tmp_path: Path) -> None:
    debian(tmp_path, tools=("grub2-mkconfig",))
    plan = plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=True)
    assert plan.commands == (("grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"),)


def test_plan_grub_snippet_that_would_win_is_refused(tmp_path: Path) -> None:
    debian(tmp_path)
    (tmp_path / "etc/default/grub.d").mkdir()
    (tmp_path / "etc/default/grub.d/kdump-tools.cfg").write_text(
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:256M"\n')
    with pytest.raises(KdumpError, match="kdump-tools.cfg also sets crashkernel="):
        plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False)


def test_plan_grub_snippet_that_sets_the_variable_again_is_refused(tmp_path: Path) -> None:
    """Found by review: a drop-in read after /etc/default/grub (a cloud image's console
    settings) that sets GRUB_CMDLINE_LINUX again undid the edit while reset-crashkernel
    said it was done. One that adds to it, or names crashkernel= only in a comment, is
    no obstacle."""
    debian(tmp_path)
    d = tmp_path / "etc/default/grub.d"
    d.mkdir()
    (d / "10_console.cfg").write_text(
        '# no crashkernel= here\nGRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=ttyS0"\n')
    assert plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False).edits
    (d / "50-cloudimg-settings.cfg").write_text('GRUB_CMDLINE_LINUX="console=ttyS0"\n')
    with pytest.raises(KdumpError, match="50-cloudimg-settings.cfg sets GRUB_CMDLINE_LINUX "
                                         "again after /etc/default/grub"):
        plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False)


def test_plan_kernel_install(tmp_path: Path) -> None:
    (tmp_path / "etc/kernel").mkdir(parents=True)
    cmdline = tmp_path / "etc/kernel/cmdline"
    cmdline.write_text("root=UUID=1-2 ro quiet\n")
    plan = plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False)
    assert plan.layout == "kernel-install"
    assert plan.edits[0].new == f"root=UUID=1-2 ro quiet crashkernel={VALUE}\n"
    # With BLS entries too (systemd-boot), ALL also changes the template for new kernels.
    entries = tmp_path / "efi/loader/entries"
    entries.mkdir(parents=True)
    (entries / f"abc-{RELEASE}.conf").write_text(
        f"title Debian\nversion {RELEASE}\nlinux /abc/{RELEASE}/linux\noptions root=UUID=1-2 ro\n")
    both = plan_reset(tmp_path, VALUE, "ALL", RELEASE, run_tools=False)
    assert (both.layout, sorted(e.path.name for e in both.edits)) == (
        "bls", ["abc-6.5.6-300.fc39.x86_64.conf", "cmdline"])


def test_plan_refuses(tmp_path: Path) -> None:
    with pytest.raises(KdumpError, match="no boot loader configuration"):
        plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False)
    entries = fedora(tmp_path)
    (entries / f"2f0e1d2c3b4a-{RELEASE}.conf").write_bytes(b"options ro \xff\n")
    with pytest.raises(KdumpError, match="not UTF-8"):
        plan_reset(tmp_path, VALUE, "ALL", RELEASE, run_tools=False)
    (entries / f"2f0e1d2c3b4a-{RELEASE}.conf").write_text(
        f"linux /vmlinuz-{RELEASE}\noptions $kernelopts\n")
    with pytest.raises(KdumpError, match=f"{RELEASE}.conf: its options line is \\$kernelopts"):
        plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False)


def test_unchanged_files_are_not_edited(tmp_path: Path) -> None:
    entries = fedora(tmp_path)
    name = f"2f0e1d2c3b4a-{RELEASE}.conf"
    (entries / name).write_text(edit_bls_entry(FEDORA_ENTRY, VALUE))
    assert plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=False).edits == ()


def test_an_admins_cma_area_stays_when_crashkernel_is_set_or_removed() -> None:
    """crashkernel=X,cma (Linux 6.16+) is a CMA area the admin added beside the
    reservation: reset-crashkernel replaces the reservation and keeps it (found by review:
    it went with the old value)."""
    line = "ro crashkernel=256M crashkernel=64M,cma quiet"
    assert set_crashkernel(line, "1G-4G:192M") == \
        "ro crashkernel=1G-4G:192M crashkernel=64M,cma quiet"
    assert set_crashkernel("ro crashkernel=64M,cma", "192M") == \
        "ro crashkernel=64M,cma crashkernel=192M"
    assert remove_crashkernel(line) == "ro crashkernel=64M,cma quiet"


def test_bls_options_lines_as_grub_and_systemd_boot_read_them() -> None:
    """Found by review: a bare "options" line became "optionscrashkernel=..."; a new word
    went on the last options line, which GRUB's blscfg never reads (it takes the first);
    and a line the edit emptied stayed as "options ", where blscfg stops reading the entry,
    its initrd line with it."""
    assert edit_bls_entry("title x\nlinux /v\noptions\n", "384M") == \
        "title x\nlinux /v\noptions crashkernel=384M\n"
    assert edit_bls_entry("title x\noptions root=UUID=1 ro\noptions rhgb quiet\n", "384M") == \
        "title x\noptions root=UUID=1 ro crashkernel=384M\noptions rhgb quiet\n"
    assert edit_bls_entry("options ro crashkernel=1G\noptions crashkernel=2G\ninitrd /i\n",
                          "384M") == "options ro crashkernel=384M\ninitrd /i\n"


def test_crashkernel_inside_another_word_comes_before_the_new_one() -> None:
    """Found by review: the kernel finds crashkernel= anywhere (strstr) and the last wins,
    so foo.crashkernel=1 after the word edited in place was the reservation: 1 byte."""
    assert set_crashkernel("ro crashkernel=512M foo.crashkernel=1 quiet", "384M") == \
        "ro foo.crashkernel=1 quiet crashkernel=384M"


@pytest.mark.parametrize("line", ['GRUB_CMDLINE_LINUX="console=ttyS0"#serial\n',
                                  "GRUB_CMDLINE_LINUX=quiet#x\n",
                                  'GRUB_CMDLINE_LINUX="console=ttyS0"\r\n'])
def test_default_grub_lines_the_shell_reads_otherwise_are_refused(line: str) -> None:
    """Found by review: a # right after the value is no comment to the shell, and a CR
    before the newline is part of the value: crashkernel=384M#serial or 384M\r, which the
    kernel rejects, so nothing would be reserved."""
    with pytest.raises(KdumpError, match="line 1"):
        edit_default_grub(line, "384M")


@pytest.mark.parametrize("text", [
    'if [ -e /etc/serial ]; then\n  GRUB_CMDLINE_LINUX="console=ttyS0"\nelse\n'
    '  GRUB_CMDLINE_LINUX="quiet"\nfi\n',
    'case "$(uname -m)" in\n  arm64)\n  GRUB_CMDLINE_LINUX="a"\n  ;;\nesac\n',
    "setup() {\n  GRUB_CMDLINE_LINUX=quiet\n}\n",
    'while read -r x; do\nGRUB_CMDLINE_LINUX="x"\ndone < /x\n',
    "cat > /tmp/x <<'END'\nGRUB_CMDLINE_LINUX=\"quiet\"\nEND\n",
])
def test_default_grub_assignments_the_shell_decides_on_are_refused(text: str) -> None:
    """Found by review: of two assignments under if/else the last was edited, whichever
    branch the shell takes; one in a here-document is no assignment at all."""
    with pytest.raises(KdumpError, match=r"line \d sets GRUB_CMDLINE_LINUX inside"):
        edit_default_grub('GRUB_TIMEOUT=5\n' + text, "V")


def test_default_grub_compound_commands_elsewhere_are_followed() -> None:
    """Blocks, one-line loops, here-strings and keywords in quotes or comments that close
    before the assignment leave it in force."""
    head = ("GRUB_DISTRIBUTOR=`( . /etc/os-release; echo ${NAME:-Debian} ) 2>/dev/null`\n"
            "# if you change this file, run update-grub\n"
            'if [ -e /x ]; then\n  GRUB_TIMEOUT=1\nfi\n'
            "for f in a b; do :; done\n"
            'GRUB_GFXMODE="if { case"\n'
            "read -r X <<< word\n"
            "cat <<-END\n\tGRUB_TIMEOUT=2\n\tEND\n")
    text = head + 'GRUB_CMDLINE_LINUX="quiet"\n'
    assert edit_default_grub(text, "V") == head + 'GRUB_CMDLINE_LINUX="quiet crashkernel=V"\n'


@pytest.mark.parametrize("link", ["/usr/share/grub/default", "../../usr/share/grub/default"])
def test_a_symlinked_file_is_edited_where_it_leads(tmp_path: Path, link: str) -> None:
    """Found by review: the link was replaced by a file, leaving the file it named (what a
    configuration manager keeps) unchanged. An absolute link is read inside the root."""
    grub = debian(tmp_path)
    real = tmp_path / "usr/share/grub/default"
    real.parent.mkdir(parents=True)
    grub.rename(real)
    grub.symlink_to(link)
    plan = plan_reset(tmp_path, VALUE, None, RELEASE, run_tools=True)
    assert [e.path for e in plan.edits] == [real]
    assert f'GRUB_CMDLINE_LINUX="crashkernel={VALUE}"' in plan.edits[0].new


def test_a_symlink_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    grub = debian(tmp_path / "root")
    (tmp_path / "elsewhere").write_text(grub.read_text())
    grub.unlink()
    grub.symlink_to("../../../elsewhere")
    with pytest.raises(KdumpError, match="leading out of"):
        plan_reset(tmp_path / "root", VALUE, None, RELEASE, run_tools=True)
