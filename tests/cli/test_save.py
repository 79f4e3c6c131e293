from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kdumpctl_py.cli import build_parser, main
from tests.builders import make_vmcore, unreadable_page

ROOT = Path(__file__).resolve().parents[2]


def test_the_flat_output_rule_is_documented_and_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--flat writes DIR/<host>-<date>/vmcore.flat, or standard output with --target -
    (makedumpfile -F writes only to standard output); help, README and man say so."""
    src, _ = make_vmcore(tmp_path)
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"), "--flat",
                 "--no-progress"]) == 0
    (saved,) = (tmp_path / "t").glob("*/vmcore.flat")
    out = capsys.readouterr().out
    assert f"saved {saved}: 27 of 296 pages written (13 zero pages left out)" in out
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flat = next(a for a in sub.choices["save"]._actions if a.dest == "flat")
    readme = " ".join((ROOT / "README.md").read_text().split())
    man = (ROOT / "man" / "kdumpctl-py.8").read_text()
    for text in (flat.help or "", readme, man):
        assert "vmcore.flat" in text and "standard output" in text and "-F" in text


def test_a_stream_whose_reader_went_away_is_an_error_said(tmp_path: Path) -> None:
    """`save --flat --target -` into a pipe whose reader is gone (ssh or cat on the other
    side died) saved nothing: one error line and exit 1, not silence."""
    src, _ = make_vmcore(tmp_path)
    r, w = os.pipe()
    os.close(r)
    try:
        out = subprocess.run([sys.executable, "-m", "kdumpctl_py", "save", "--vmcore", str(src),
                              "--target", "-", "--flat", "--dump-level", "1", "--no-progress"],
                             stdout=w, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    finally:
        os.close(w)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("kdumpctl-py: error: ")
    assert "standard output" in out.stderr


def test_a_negative_thread_count_is_bad_usage(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `save --threads -3` saved with one thread
    and said nothing (the configuration's --num-threads refuses it)."""
    src, _ = make_vmcore(tmp_path)
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"),
                 "--threads", "-3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == ("kdumpctl-py: error: argument --threads: '-3' is not 0 (one per CPU) "
                   "or more (see kdumpctl-py save --help)\n")
    assert not (tmp_path / "t").exists()


def test_a_page_lost_is_said_once_as_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A page /proc/vmcore cannot give back: save fails (exit 1) with one line that counts
    the pages and names unreadable-pages.txt; no summary and no second warning, since
    save_vmcore raises IncompleteDump whenever pages are lost."""
    src, _ = make_vmcore(tmp_path)
    unreadable_page(monkeypatch, src)
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"),
                 "--dump-level", "0", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("kdumpctl-py: error: 1 pages ")
    assert "unreadable-pages.txt" in err and "marked incomplete" in err
    (d,) = (tmp_path / "t").iterdir()
    assert (d / "unreadable-pages.txt").read_text() == "0x105\n"
    assert (d / "vmcore-incomplete").exists()


def test_a_stream_is_never_written_to_a_terminal(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: `save --flat --target -` typed at a shell
    wrote the binary stream (the whole dump) onto the terminal; gzip refuses that too."""
    import pty
    import select

    src, _ = make_vmcore(tmp_path)
    main_fd, tty = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kdumpctl_py", "save", "--vmcore", str(src),
                             "--target", "-", "--flat", "--dump-level", "1", "--no-progress"],
                            stdout=tty, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(tty)
    written = 0
    try:  # read what reaches the terminal, so that a writer never blocks on it
        while proc.poll() is None or select.select([main_fd], [], [], 0)[0]:
            if select.select([main_fd], [], [], 0.1)[0]:
                try:
                    written += len(os.read(main_fd, 1 << 16))
                except OSError:  # EIO: the other side is closed
                    break
    finally:
        os.close(main_fd)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 2 and written == 0, (proc.returncode, written)
    assert stderr.count("\n") == 1 and "terminal" in stderr, stderr


@pytest.mark.parametrize("option", [["--compress", "zstd"], ["--compress", "zlib"]])
def test_a_compression_given_with_the_elf_format_is_bad_usage(
        option: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `save --format elf --compress zstd` wrote an
    uncompressed ELF dump and said nothing, where the configuration's core_collector
    refuses `makedumpfile -E -c` ('-E writes an uncompressed ELF dump; drop -c')."""
    src, _ = make_vmcore(tmp_path)
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"),
                 "--format", "elf", *option, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == ("kdumpctl-py: error: --format elf writes an uncompressed ELF dump; "
                   "drop --compress\n")
    assert not (tmp_path / "t").exists()
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"),
                 "--format", "elf", "--compress", "none", "--no-progress"]) == 0


@pytest.mark.parametrize("limit", ["1", "4K", "0", "55M"])
def test_a_memory_limit_below_what_a_save_needs_is_bad_usage(
        limit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `save --memory-limit 1` was taken, a budget
    that cannot hold even the interpreter; the smallest that works is named."""
    src, _ = make_vmcore(tmp_path)
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"),
                 "--memory-limit", limit, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kdumpctl-py: error: argument "
                                                   "--memory-limit: ")
    assert "at least 56M" in err
    assert not (tmp_path / "t").exists()


def test_the_memory_limit_option_reads_as_the_directive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--memory-limit takes what memory_limit takes: the smallest size, and auto, which
    gives back the default over a configured value."""
    src, _ = make_vmcore(tmp_path)
    conf = tmp_path / "kdump.conf"
    conf.write_text("memory_limit 96M\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(conf))
    argv = ["save", "--vmcore", str(src), "--target", str(tmp_path / "t"), "--no-progress"]
    assert main([*argv, "--memory-limit", "56M"]) == 0
    assert "(budget 56 MiB)" in capsys.readouterr().out
    assert main(argv) == 0
    assert "(budget 96 MiB)" in capsys.readouterr().out
    assert main([*argv, "--memory-limit", "auto"]) == 0
    assert "(budget 96 MiB)" not in capsys.readouterr().out


@pytest.mark.parametrize("fallback", [[], ["--fallback"]])
def test_a_target_in_a_missing_directory_is_refused(
        fallback: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `save --target /nonexistent/dir` created the
    whole path, so a typo put the dump where nobody would look. The target itself may be
    new (a freshly made file system has no crash directory yet); its parent may not. A
    mistyped path is bad input: exit 2."""
    src, _ = make_vmcore(tmp_path)
    target = tmp_path / "typo" / "crash"
    assert main(["save", "--vmcore", str(src), "--target", str(target), *fallback,
                 "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"kdumpctl-py: error: the target {target} cannot be made: {tmp_path / 'typo'} does "
        "not exist; create that directory, or give another --target\n")
    assert not (tmp_path / "typo").exists()
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "crash"),
                 *fallback, "--no-progress"]) == 0
    assert len(list((tmp_path / "crash").iterdir())) == 1



def test_a_target_that_is_a_file_is_bad_input(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: `save --target /etc/passwd` read the vmcore, then failed with exit 1
    and `the target /etc/passwd is not a directory`, not saying what to do; a mistyped
    path is bad input, refused before anything is read, as one in a missing directory."""
    src, _ = make_vmcore(tmp_path)
    target = tmp_path / "file"
    target.write_text("mine\n")
    assert main(["save", "--vmcore", str(src), "--target", str(target), "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"kdumpctl-py: error: the target {target} is not a directory; give a directory as "
        "--target (the dump is saved in a new directory under it)\n")
    assert target.read_text() == "mine\n"


def test_an_elf_vmcore_is_opened_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """save opened --vmcore once more before every save, only to tell a dump saved already
    from an ELF vmcore; that look belongs to the error path, not to every save."""
    import builtins

    src, _ = make_vmcore(tmp_path)
    opens: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opens.append(str(file))
        return real_open(file, *args, **kwargs)

    def counting_os_open(file: Any, *args: Any, **kwargs: Any) -> int:
        opens.append(str(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(os, "open", counting_os_open)
    assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"),
                 "--no-progress"]) == 0
    assert opens.count(str(src)) == 1
    assert "saved " in capsys.readouterr().out


def test_a_saved_dump_given_as_the_vmcore_is_named_for_what_it_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `save --vmcore` of a dump saved already, to
    filter it again as makedumpfile can, said `... is not an ELF file`, a flattened one
    the same, and its directory `Is a directory`; each now says what it is, as dmesg and
    analyse do."""
    src, _ = make_vmcore(tmp_path)
    for flat in ([], ["--flat"]):
        assert main(["save", "--vmcore", str(src), "--target", str(tmp_path / "t"),
                     "--dump-level", "1", "--no-progress", *flat]) == 0
    capsys.readouterr()
    kdump, flat_dir = sorted((tmp_path / "t").iterdir())
    argv = ["save", "--target", str(tmp_path / "again"), "--no-progress", "--vmcore"]
    assert main([*argv, str(kdump / "vmcore")]) == 2
    assert capsys.readouterr().err == (
        f"kdumpctl-py: error: {kdump}/vmcore is a kdump-compressed dump, saved already: save "
        "reads an ELF vmcore such as /proc/vmcore; analyse and dmesg read this one as it is\n")
    assert main([*argv, str(flat_dir / "vmcore.flat")]) == 2
    assert "kdumpctl-py reassemble" in capsys.readouterr().err
    assert main([*argv, str(kdump)]) == 2
    assert capsys.readouterr().err == (f"kdumpctl-py: error: {kdump} is a directory; give the "
                                       f"dump in it, {kdump}/vmcore\n")
    assert not (tmp_path / "again").exists()
