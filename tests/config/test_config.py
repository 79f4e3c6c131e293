from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kdumpctl_py.cli import build_parser
from kdumpctl_py.config import Config, ConfigError, Target, parse_text, read_config
from kdumpctl_py.config.model import NfsTarget, SshTarget, device_path
from kdumpctl_py.config.render import machine_problems, show
from kdumpctl_py.config.settings import (
    COMPRESSIONS,
    DEFAULT_PATH,
    FAILURE_ACTIONS,
    FINAL_ACTIONS,
    FORMATS,
    METHODS,
    SETTINGS,
)
from kdumpctl_py.config.values import collector_line, parse_collector
from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.known_hosts import host_name, knows_host
from kdumpctl_py.facts.view import SystemView

FULL = """\
# a comment
path /dumps   # trailing comment
ext4 LABEL=crash
core_collector makedumpfile -l --message-level 7 -d 31
failure_action dump_to_rootfs
final_action poweroff
kdump_pre /usr/local/bin/pre "an arg with spaces"
kdump_post /usr/local/bin/post
method file
keep 3
cmdline_append console=ttyS1 dyndbg="file foo.c +p"
cmdline_append loglevel=7
cmdline_remove quiet irqpoll
"""


def test_full_file() -> None:
    cfg = parse_text(FULL, "kdump.conf")
    assert cfg.path == "/dumps" and cfg.target == Target("ext4", "LABEL=crash")
    assert (cfg.compress, cfg.dump_level, cfg.format, cfg.flat) == ("lzo", 31, "kdump", False)
    assert cfg.failure_action == "dump_to_rootfs" and cfg.final_action == "poweroff"
    assert cfg.kdump_pre == ("/usr/local/bin/pre", "an arg with spaces")
    assert cfg.kdump_post == ("/usr/local/bin/post",)
    assert cfg.method == "file" and cfg.keep == 3
    assert cfg.cmdline_append == ("console=ttyS1", "dyndbg=file foo.c +p", "loglevel=7")
    assert cfg.cmdline_remove == ("quiet", "irqpoll")
    assert cfg.source == "kdump.conf" and ("keep", 10) in cfg.lines


def test_empty_file_is_the_defaults() -> None:
    cfg = parse_text("\n# nothing\n", "f")
    assert dataclasses.replace(cfg, source=None) == Config()


@pytest.mark.parametrize("args,want", [
    ("-c -d 31", {"compress": "zlib", "dump_level": 31}),
    ("-l -d 31", {"compress": "lzo"}),
    ("-z -d31", {"compress": "zstd", "dump_level": 31}),
    ("-d 1", {"compress": "none", "dump_level": 1}),
    ("-E -d 1", {"format": "elf", "compress": "none"}),
    ("-lF -d 17", {"compress": "lzo", "flat": True, "dump_level": 17}),
    ("-c --message-level=7 --num-threads 4 -d 0", {"threads": 4, "dump_level": 0}),
])
def test_core_collector_maps(args: str, want: dict[str, object]) -> None:
    got = parse_collector(["makedumpfile", *args.split()])
    for k, v in want.items():
        assert got[k] == v


@pytest.mark.parametrize("line,error", [
    ("core_collector cp", "only makedumpfile"),
    ("core_collector makedumpfile -p -d 31", "-p has no kdumpctl-py equivalent"),
    ("core_collector makedumpfile --split", "--split has no kdumpctl-py equivalent"),
    ("core_collector makedumpfile -d 11,31", "several dump levels"),
    ("core_collector makedumpfile -d 32", "not between 0 and 31"),
    ("core_collector makedumpfile -c -l", "two compressions"),
    ("core_collector makedumpfile -E -c", "uncompressed ELF"),
    ("core_collector makedumpfile -d", "needs a dump level"),
    ("core_collector makedumpfile /proc/vmcore out", "unexpected argument"),
    ("frobnicate yes", "unknown directive 'frobnicate'"),
    ("raw /dev/vdb", "Fedora kdump.conf directive that kdumpctl-py does not support"),
    ("ssh dumps.example.org", "'dumps.example.org' is not USER@HOST"),
    ("ssh kdump@", "is not USER@HOST"),
    ("ssh kdump@-oProxyCommand=x", "is not a host name or address"),
    ("ssh kdump@host:0", "not between 1 and 65535"),
    ("ssh kdump@[::1]x", "an IPv6 address is written [ADDRESS]:PORT"),
    ("ssh 'a b@host'", "'a b' is not a user name"),
    ("ssh kdump@a kdump@b", "takes one argument"),
    ("sshkey .ssh/id", "not an absolute path"),
    ("nfs server", "'server' is not HOST:/EXPORT"),
    ("nfs server:dumps", "is not HOST:/EXPORT"),
    ("nfs server:/d -o x", "takes HOST:/EXPORT and at most one OPTIONS word"),
    ("nfs server:/d -ofoo", "is not a comma-separated list of mount options"),
    ("path relative/dir", "not an absolute path"),
    ("path /a /b", "takes one argument"),
    ("ext4 sda1", "not a /dev path"),
    ("dump_level ten", "'ten' is not a number"),
    ("keep -1", "less than 0"),
    ("memory_limit lots", "'lots' is not a size"),
    ("memory_limit 0", "give at least 56M, or auto"),
    ("memory_limit 1", "at least 56M"),
    ("memory_limit 4K", "at least 56M"),
    ("memory_limit 55M", "at least 56M"),
    ("compress bzip2", "'bzip2' is not one of zstd|zlib|lzo|none"),
    ("failure_action panic", "not one of"),
    ("final_action shell", "not one of reboot|halt|poweroff"),
    ("kdump_pre script.sh", "not an absolute path"),
    ("method", "method needs auto|extended|file|classic"),
    ("cmdline_remove quiet=1", "takes parameter names"),
    ('kdump_post "/bin/unclosed', "No closing quotation"),
])
def test_errors_name_file_and_line(line: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_text(f"# first\n\n{line}\n", "/etc/x.conf")
    message = str(e.value)
    assert message.startswith("/etc/x.conf:3: ") and error in message
    assert e.value.exit_code == 2 and "\n" not in message


@pytest.mark.parametrize("text,error", [
    ("keep 1\nkeep 2\n", "x:2: keep sets keep, already set on line 1"),
    ("dump_level 1\ncore_collector makedumpfile -d 3\n",
     "x:2: core_collector sets dump level, already set on line 1"),
    ("ext4 /dev/sda1\nxfs /dev/sdb1\n", "x:2: xfs sets target, already set on line 1"),
    ("ext4 /dev/sda1\nssh u@h\n", "x:2: ssh sets target, already set on line 1"),
    ("ssh u@h\nnfs h:/d\n", "x:2: nfs sets target, already set on line 1"),
    ("nfs h:/d\nnfs h:/e\n", "x:2: nfs sets target, already set on line 1"),
])
def test_directive_twice_is_an_error(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        parse_text(text, "x")


@pytest.mark.parametrize("line,target", [
    ("ssh kdump@dumps.example.org", SshTarget("kdump", "dumps.example.org")),
    ("ssh kdump@127.0.0.1:2222", SshTarget("kdump", "127.0.0.1", 2222)),
    ("ssh kdump@[2001:db8::1]:22", SshTarget("kdump", "2001:db8::1", 22)),
    ("ssh kdump@2001:db8::1", SshTarget("kdump", "2001:db8::1")),
    ("nfs server:/srv/dumps", NfsTarget("server:/srv/dumps")),
    ("nfs server:/srv/dumps vers=4.2,proto=tcp",
     NfsTarget("server:/srv/dumps", "vers=4.2,proto=tcp")),
])
def test_network_targets(line: str, target: object) -> None:
    cfg = parse_text(f"{line}\npath /dumps\n", "f")
    assert cfg.target == target and cfg.path == "/dumps"
    assert cfg.sshkey == "/root/.ssh/kdump_id_ed25519"
    assert f"\n{line}\n" in show(cfg) + "\n"


def test_ssh_key_and_host_key_are_checked_on_the_machine(tmp_path: Path) -> None:
    (tmp_path / "kdumpctl-snapshot.json").write_text("{}")
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/ssh").write_text("")
    (tmp_path / "usr/bin/ssh").chmod(0o755)
    cfg = parse_text("ssh u@h:2222\nsshkey /keys/id\n", "f")
    assert machine_problems(cfg, SystemView(tmp_path)) == [
        "sshkey /keys/id: no such key; run kdumpctl-py propagate"]
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys/id").write_text("key")
    assert machine_problems(cfg, SystemView(tmp_path)) == [
        "/keys/known_hosts: no host key for [h]:2222, so ssh without a prompt refuses it; "
        "run kdumpctl-py propagate"]
    salt = b"0123456789abcdef0123"
    hashed = hmac.new(salt, b"[h]:2222", hashlib.sha1).digest()
    (tmp_path / "keys/known_hosts").write_text(
        "h ssh-ed25519 AAAA\n"  # port 22 only
        f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(hashed).decode()} "
        "ssh-ed25519 AAAA\n")
    assert machine_problems(cfg, SystemView(tmp_path)) == []
    (tmp_path / "usr/bin/ssh").unlink()
    assert machine_problems(cfg, SystemView(tmp_path)) == [
        "ssh: the ssh client is not installed (openssh-client)"]


def test_known_hosts_patterns() -> None:
    text = "@revoked bad ssh-ed25519 A\n*.example.org,!x.example.org ssh-ed25519 A\n"
    assert knows_host(text, "a.example.org") and not knows_host(text, "x.example.org")
    assert not knows_host(text, "bad") and not knows_host("# h k A\nh\n", "h")
    assert host_name("h", 22) == host_name("h", None) == "h"


def test_a_host_on_another_port_is_known_by_its_plain_line() -> None:
    """ssh, ssh-keyscan and an unhashed known_hosts write `[host]:port`: its brackets are
    part of the name, not a character class, and only `*` and `?` are wildcards."""
    text = "[10.0.0.5]:2222 ssh-ed25519 A\n[dumps.example.org]:22?? ssh-ed25519 A\n"
    assert knows_host(text, host_name("10.0.0.5", 2222))
    assert knows_host(text, host_name("dumps.example.org", 2200))
    assert not knows_host(text, host_name("10.0.0.5", 2223))
    assert not knows_host(text, "1:2222") and not knows_host("[ab]c ssh-ed25519 A\n", "ac")


def test_nfs_needs_mount_nfs4_on_the_machine(tmp_path: Path) -> None:
    (tmp_path / "kdumpctl-snapshot.json").write_text("{}")
    cfg = parse_text("nfs srv:/export\n", "f")
    assert machine_problems(cfg, SystemView(tmp_path)) == [
        "nfs srv:/export: mount.nfs4 is not installed (nfs-common, or nfs-utils)"]
    (tmp_path / "sbin").mkdir()
    (tmp_path / "sbin/mount.nfs4").write_text("")
    (tmp_path / "sbin/mount.nfs4").chmod(0o755)
    assert machine_problems(cfg, SystemView(tmp_path)) == []


def test_missing_default_file_means_defaults(tmp_path: Path) -> None:
    (tmp_path / "kdumpctl-snapshot.json").write_text("{}")
    assert read_config(SystemView(tmp_path)) == Config()


def test_file_read_under_the_sysroot(tmp_path: Path) -> None:
    (tmp_path / "kdumpctl-snapshot.json").write_text("{}")
    conf = tmp_path / DEFAULT_PATH.lstrip("/")
    conf.parent.mkdir(parents=True)
    conf.write_text("keep 4\nbogus\n")
    with pytest.raises(ConfigError, match=rf"^{conf}:2: unknown directive"):
        read_config(SystemView(tmp_path))
    conf.write_text("keep 4\n")
    assert read_config(SystemView(tmp_path)).keep == 4


def test_env_overrides_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "other.conf"
    f.write_text("dump_level 1\n")
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(f))
    assert read_config(None).dump_level == 1
    monkeypatch.setenv("KDUMPCTL_CONFIG", str(tmp_path / "missing.conf"))
    with pytest.raises(UsageError, match="no such configuration file"):
        read_config(None)


def test_a_named_file_that_cannot_be_read_is_bad_input(tmp_path: Path) -> None:
    """Found by the new-administrator sweep: `config check DIR` exited 1 with an OSError
    where a missing file exits 2; `capture`, which saves with the defaults when the
    configuration is bad input, would have stopped on it."""
    with pytest.raises(UsageError, match=f"^{tmp_path}: Is a directory$"):
        read_config(None, str(tmp_path))


def test_a_named_file_without_end_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the new-administrator sweep: `config check /dev/zero` (or KDUMPCTL_CONFIG
    naming it) read without end, its memory growing until killed."""
    monkeypatch.setenv("KDUMPCTL_CONFIG", "/dev/zero")
    with pytest.raises(UsageError, match="^/dev/zero: larger than 8 MiB, not a configuration"):
        read_config(None)


def test_every_directive_is_documented_and_parsed() -> None:
    fields = {f.name for f in dataclasses.fields(Config)} - {"source", "lines", "warnings"}
    covered = {f for s in SETTINGS for f in s.fields}
    assert covered == fields
    for s in SETTINGS:
        assert s.doc.endswith(".") and s.syntax and s.default


def test_each_option_a_directive_names_is_on_the_command_line() -> None:
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert isinstance(commands, dict)
    for s in SETTINGS:
        for option in s.options:
            command, flag = option.split()
            assert flag in commands[command]._option_string_actions, option


def test_choices_are_the_tables() -> None:
    """The command line offers exactly what the file takes, from the same constants."""
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert isinstance(commands, dict)
    for option, choices in (("save --compress", COMPRESSIONS), ("save --format", FORMATS),
                            ("load --method", METHODS), ("start --method", METHODS)):
        command, flag = option.split()
        assert commands[command]._option_string_actions[flag].choices is choices


configs = st.builds(
    Config,
    path=st.sampled_from(["/var/crash", "/dumps/a b"]),
    target=st.one_of(st.none(), st.builds(Target, st.sampled_from(["ext4", "xfs"]),
                                          st.sampled_from(["/dev/vdb", "UUID=1-2"])),
                     st.builds(SshTarget, st.sampled_from(["kdump", "root"]),
                               st.sampled_from(["h.example.org", "10.0.2.2", "::1"]),
                               st.sampled_from([None, 22, 2222])),
                     st.builds(NfsTarget, st.sampled_from(["h:/d", "10.0.2.2:/a b"]),
                               st.sampled_from(["", "vers=4.2"]))),
    sshkey=st.sampled_from(["/root/.ssh/kdump_id_ed25519", "/k/id"]),
    dump_level=st.integers(0, 31),
    compress=st.sampled_from(COMPRESSIONS),
    format=st.sampled_from(FORMATS),
    failure_action=st.sampled_from(FAILURE_ACTIONS),
    final_action=st.sampled_from(FINAL_ACTIONS),
    kdump_pre=st.sampled_from([(), ("/bin/true",), ("/x", "a b", "$1")]),
    method=st.sampled_from(METHODS),
    dtb=st.sampled_from([None, "/boot/board.dtb"]),
    keep=st.integers(0, 9),
    memory_limit=st.sampled_from([0, 96 << 20, 1 << 30, (56 << 20) + 12345]),
    cmdline_append=st.sampled_from([(), ("a=1", "b")]),
    cmdline_remove=st.sampled_from([(), ("quiet",)]),
)


@given(configs)
def test_show_reads_back_as_the_same_config(cfg: Config) -> None:
    if cfg.format == "elf":
        cfg = dataclasses.replace(cfg, compress="none")
    again = parse_text(show(cfg), "shown")
    assert dataclasses.replace(again, source=None, lines=()) == cfg


def test_show_marks_defaults_and_collector_form() -> None:
    text = show(parse_text("core_collector makedumpfile -c -F -d 1\n", "f"))
    assert "core_collector makedumpfile -c -F -d 1\n" in text + "\n"
    assert "dump_level" not in text and "keep 0  # default" in text
    assert collector_line(Config()) == "makedumpfile -z -d 31"


def test_memory_limit() -> None:
    assert parse_text("memory_limit 96M\n", "f").memory_limit == 96 << 20
    assert parse_text("memory_limit auto\n", "f").memory_limit == 0
    assert "memory_limit auto  # default" in show(Config())


def test_config_check_refuses_a_memory_limit_a_save_cannot_keep(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by the new-administrator sweep: `memory_limit 1` passed check; the capture
    kernel's save would then run with a budget that cannot hold the interpreter."""
    from kdumpctl_py.cli import main

    conf = tmp_path / "kdump.conf"
    conf.write_text("memory_limit 1\n")
    assert main(["config", "check", str(conf)]) == 2
    assert capsys.readouterr().err == (
        f"kdumpctl-py: error: {conf}:1: memory_limit: '1' is below what a save needs; "
        "give at least 56M, or auto\n")


def test_machine_checks(tmp_path: Path) -> None:
    (tmp_path / "kdumpctl-snapshot.json").write_text(json.dumps({}))
    cfg = parse_text("xfs UUID=abc\nkdump_post /usr/bin/post\n", "f")
    problems = machine_problems(cfg, SystemView(tmp_path))
    assert problems == ["xfs UUID=abc: no device /dev/disk/by-uuid/abc",
                        "kdump_post /usr/bin/post: not an executable file"]
    assert device_path("/dev/vdb") == "/dev/vdb"
    (tmp_path / "dev/disk/by-uuid").mkdir(parents=True)
    (tmp_path / "dev/disk/by-uuid/abc").touch()
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/post").write_text("#!/bin/sh\n")
    (tmp_path / "usr/bin/post").chmod(0o755)
    assert machine_problems(cfg, SystemView(tmp_path)) == []


def test_dtb_is_a_file_on_the_machine(tmp_path: Path) -> None:
    (tmp_path / "kdumpctl-snapshot.json").write_text(json.dumps({}))
    cfg = parse_text("dtb /boot/board.dtb\n", "f")
    assert cfg.dtb == "/boot/board.dtb" and Config().dtb is None
    assert machine_problems(cfg, SystemView(tmp_path)) == ["dtb /boot/board.dtb: no such file"]
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/board.dtb").write_bytes(b"\xd0\x0d\xfe\xed")
    assert machine_problems(cfg, SystemView(tmp_path)) == []
    assert "# dtb PATH  # none" in show(Config())


directive_words = st.sampled_from([s.names[0] for s in SETTINGS] + ["raw", "x", "#", '"'])
lines = st.lists(st.tuples(directive_words, st.lists(st.text(max_size=8), max_size=3)),
                 max_size=6)


@given(lines)
def test_any_text_parses_or_fails_with_file_and_line(raw: list[tuple[str, list[str]]]) -> None:
    text = "\n".join(" ".join([name, *args]) for name, args in raw)
    try:
        parse_text(text, "fuzz.conf")
    except ConfigError as e:
        assert str(e).startswith("fuzz.conf:") and str(e).split(":")[1].isdigit()


# Fedora's stock /etc/kdump.conf as kdump-utils generates it for x86_64 and aarch64
# (gen-kdump-conf.sh): its comment block shortened, every active line as shipped.
FEDORA_STOCK = """\
# This file contains a series of commands to perform (in order) in the kdump
# kernel after a kernel crash in the crash kernel(1st kernel) has happened.
#raw /dev/vg/lv_kdump
#ext4 UUID=03138356-5e61-4ab3-b58e-27507ac41937
#nfs my.server.com:/export/tmp
#ssh user@my.server.com
#sshkey /root/.ssh/kdump_id_rsa
auto_reset_crashkernel yes
path /var/crash
core_collector makedumpfile -l --message-level 7 -d 31
#core_collector scp
#kdump_post /var/crash/scripts/kdump-post.sh
#failure_action shell
#dracut_args --omit-drivers "cfg80211 snd" --add-drivers "ext2 ext3"
"""


def test_fedoras_stock_file_passes_check(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Taken as it is, with a warning for what is ignored (issue 23, item 10)."""
    from kdumpctl_py.cli import main

    conf = tmp_path / "kdump.conf"
    conf.write_text(FEDORA_STOCK)
    assert main(["config", "check", str(conf)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{conf}: ok\n"
    assert err == (f"kdumpctl-py: warning: {conf}:8: auto_reset_crashkernel is ignored: "
                   "kdumpctl-py never changes crashkernel= by itself; run kdumpctl-py "
                   "reset-crashkernel\n")
    cfg = read_config(None, str(conf))
    assert (cfg.compress, cfg.dump_level, cfg.path) == ("lzo", 31, "/var/crash")
    uncommented = FEDORA_STOCK.replace("\n#dracut_args", "\ndracut_args")
    assert len(parse_text(uncommented, "f").warnings) == 2
    with pytest.raises(ConfigError, match="f:3: raw is a Fedora"):
        parse_text(FEDORA_STOCK.replace("\n#raw", "\nraw"), "f")
    ssh = parse_text(FEDORA_STOCK.replace("\n#ssh", "\nssh").replace("\n#sshkey", "\nsshkey"),
                     "f")
    assert ssh.target == SshTarget("user", "my.server.com")
    assert ssh.sshkey == "/root/.ssh/kdump_id_rsa"
    with pytest.raises(ConfigError, match="f:6: ssh sets target, already set on line 5"):
        parse_text(FEDORA_STOCK.replace("\n#nfs", "\nnfs").replace("\n#ssh", "\nssh"), "f")


def test_the_lzo_binding_is_installed_with_the_tool() -> None:
    """Fedora's core_collector is makedumpfile -l: setup.sh and the wheel's extras bring the
    LZO binding, so --compress lzo works where the tool was set up."""
    import tomllib

    from kdumpctl_py.capture.compress import codec

    root = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras["lzo"] == ["python-lzo"]
    assert "lzo" in next(line for line in (root / "setup.sh").read_text().splitlines()
                         if "pip install" in line and "-e" in line)
    assert "liblzo2-dev" in (root / "setup.sh").read_text()
    lzo = codec("lzo")
    assert lzo is not None and lzo.make()(memoryview(bytes(4096)))


def test_check_names_the_file_it_looked_for(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from kdumpctl_py.cli import main
    from tests.builders import synthetic_snapshot

    root = synthetic_snapshot(tmp_path)
    for argv in (["config", "check"], ["config", "show"]):
        assert main(["--sysroot", str(root), *argv]) == 0
        assert f"{root}{DEFAULT_PATH} does not exist: the defaults" in capsys.readouterr().out
    (root / DEFAULT_PATH.lstrip("/")).parent.mkdir(parents=True)
    (root / DEFAULT_PATH.lstrip("/")).write_text("kdump_post /no/such/program\n")
    assert main(["--sysroot", str(root), "config", "check"]) == 2  # as README says
    err = capsys.readouterr().err
    assert err.startswith(f"kdumpctl-py: error: {root}{DEFAULT_PATH}: kdump_post /no/such")


def test_the_nfs_directive_names_the_capture_kernels_mount_options() -> None:
    from kdumpctl_py.service.target import NFS_OPTIONS

    (nfs,) = (s for s in SETTINGS if s.names == ("nfs",))
    assert NFS_OPTIONS in nfs.doc
