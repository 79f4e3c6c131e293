"""The configuration as data: the frozen `Config`, and the one table of directives.

The table (`SETTINGS`) drives the parser (`parse.py`), `config show`, `config
check` and the kdumpctl-py.conf(5) manual page (`man.py`), so the three never
disagree. The syntax is Fedora's kdump.conf: one directive per line, its
arguments split like a shell's words (quotes group, `#` starts a comment),
plus kdumpctl-py's own directives for what Fedora puts elsewhere.
"""

from __future__ import annotations

from typing import NamedTuple

from kdumpctl_py.config import values as v
from kdumpctl_py.config.model import DEFAULT_SSHKEY

DEFAULT_PATH = "/etc/kdumpctl-py/kdump.conf"
ENV_PATH = "KDUMPCTL_CONFIG"
FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs", "btrfs")
FAILURE_ACTIONS = ("reboot", "halt", "poweroff", "shell", "dump_to_rootfs")
FINAL_ACTIONS = ("reboot", "halt", "poweroff")
LOAD_METHODS = ("extended", "file", "classic")  # the system calls (plan/method.py)
METHODS = ("auto", *LOAD_METHODS)
COMPRESSIONS = ("zstd", "zlib", "lzo", "none")  # capture/compress.py has a codec for each
FORMATS = ("kdump", "elf")
ZLIB_ENGINES = ("auto", "isal", "zlib")  # capture/compress.py: zlib_engine
# Fedora kdump.conf directives kdumpctl-py knows of but does not do: named in the error,
# since each changes where or whether a dump is written.
FEDORA_ONLY = ("raw", "virtiofs", "fence_kdump_args", "fence_kdump_nodes",
               "kdump_emergency", "default")
# Fedora directives that only shape Fedora's own kdump initramfs or its boot loader
# handling: ignored with a warning, so Fedora's stock kdump.conf loads as it is.
FEDORA_IGNORED = {
    "auto_reset_crashkernel": "kdumpctl-py never changes crashkernel= by itself; run "
                              "kdumpctl-py reset-crashkernel",
    "extra_bins": "kdumpctl-py builds no kdump initramfs",
    "extra_modules": "kdumpctl-py builds no kdump initramfs",
    "dracut_args": "kdumpctl-py builds no kdump initramfs",
    "force_rebuild": "kdumpctl-py builds no kdump initramfs",
    "force_no_rebuild": "kdumpctl-py builds no kdump initramfs",
}


class Setting(NamedTuple):
    """One directive: its names, the syntax and default shown to people, and its meaning."""

    names: tuple[str, ...]
    syntax: str
    default: str
    doc: str
    fields: tuple[str, ...]  # the Config fields it sets
    parse: v.Parse  # its arguments as those fields
    show: v.Show  # its line in `config show` for a Config
    repeat: bool = False  # may appear on several lines (arguments accumulate)
    options: tuple[str, ...] = ()  # the command-line options that override it ("save --x")

    @property
    def name(self) -> str:
        return self.names[0]


SETTINGS: tuple[Setting, ...] = (
    Setting(("path",), "DIR", "/var/crash",
            "Directory that receives the dump directories. Without a target it is a "
            "directory of the root file system; with one it is relative to the target's "
            "root, as in Fedora's kdump.conf.", ("path",),
            v.field("path", v.absolute), v.show_plain("path")),
    Setting(FILESYSTEMS, "DEVICE", "none (the root file system)",
            "Save the dump on a local file system of that type: DEVICE is a /dev path, "
            "LABEL=, UUID=, PARTUUID= or PARTLABEL=. The capture kernel mounts it at a "
            "private mount point under /run/kdumpctl-py and writes under path there; the "
            "first kernel only checks that the device exists. At most one target: a "
            "local file system, ssh or nfs.",
            ("target",),
            v.local_target, v.show_local),
    Setting(("ssh",), "USER@HOST[:PORT]", "none",
            "Save the dump on an ssh server, under path there: the capture kernel streams "
            "the flattened format through ssh -i sshkey -o BatchMode=yes into "
            "HOST-DATE/vmcore-incomplete, renames it when whole and, when kdumpctl-py is "
            "installed on the server, turns it into a kdump-compressed vmcore there "
            "(kdumpctl-py reassemble); else vmcore.flat stays. A server that stops "
            "reading the stream for 5 minutes while the connection stays alive (a hung "
            "disk there) ends the attempt, and failure_action follows. The key must be "
            "installed "
            "on the server and the server's host key in known_hosts beside the key "
            "(kdumpctl-py propagate does both; config check looks for them). Before "
            "arming, start and status log in with the key, write a file there and compare "
            "the free space with the dump's estimated size. A port, or an IPv6 address in "
            "brackets, follows a colon: kdump@[2001:db8::1]:2222.", ("target",),
            v.ssh_target, v.show_ssh),
    Setting(("sshkey",), "PATH", DEFAULT_SSHKEY,
            "The private key ssh uses for an ssh target (ed25519, no passphrase; "
            "kdumpctl-py propagate makes it when missing).", ("sshkey",),
            v.field("sshkey", v.absolute), v.show_plain("sshkey")),
    Setting(("nfs",), "HOST:/EXPORT [OPTIONS]", "none",
            "Save the dump on an NFS v4 export: the capture kernel mounts it at "
            "/run/kdumpctl-py/target (OPTIONS are mount -o options added to nfs4's: "
            "vers=4,soft,timeo=100,retrans=3) and writes under path there as on a local "
            "disk. Before arming, start and status mount it the same way (one try) on a "
            "private directory, write a file there, compare the free space with the dump's "
            "estimated size and unmount it; config check looks for mount.nfs4.",
            ("target",), v.nfs_target, v.show_nfs),
    Setting(("core_collector",), "makedumpfile OPTIONS", "makedumpfile -z -d 31",
            "Fedora's collector line, mapped onto kdumpctl-py's own writer: -c is zlib, "
            "-l lzo, -z zstd, none of them no compression, -E the ELF format, -F the "
            "flattened stream, -d N the dump level, --num-threads N the threads; "
            "--message-level is accepted and ignored. Any other option, or another "
            "collector, is an error. Excludes dump_level, compress and format.",
            ("dump_level", "compress", "format", "flat", "threads"),
            v.collector, v.show_collector,
            options=("save --dump-level", "save --compress", "save --format", "save --flat",
                     "save --threads")),
    Setting(("dump_level",), "N", "31",
            "makedumpfile's -d bit mask, 0 to 31: 1 zero pages, 2 page cache, 4 private "
            "page cache, 8 user data, 16 free pages.", ("dump_level",),
            v.field("dump_level", lambda w: v.integer(w, 0, 31)), v.show_plain("dump_level"),
            options=("save --dump-level",)),
    Setting(("compress",), "|".join(COMPRESSIONS), "zstd",
            "Per-page compression of the kdump-compressed format.", ("compress",),
            v.choice("compress", COMPRESSIONS), v.show_plain("compress"),
            options=("save --compress",)),
    Setting(("zlib_engine",), "|".join(ZLIB_ENGINES), "auto",
            "What writes zlib pages (compress zlib or core_collector -c): isal, Intel's "
            "ISA-L deflate through the Python module isal (a kdumpctl-py dependency on "
            "x86_64 and arm64), about twice as cheap in CPU for a whole save as the system "
            "zlib, a few per cent larger, and not always the same bytes from run to run; "
            "zlib, the system zlib at level 1, which writes makedumpfile's bytes exactly; "
            "auto, isal when it is installed, else zlib. Every reader of the format "
            "(makedumpfile, crash, drgn) reads both.", ("zlib_engine",),
            v.choice("zlib_engine", ZLIB_ENGINES), v.show_plain("zlib_engine"),
            options=("save --zlib-engine",)),
    Setting(("format",), "|".join(FORMATS), "kdump",
            "kdump-compressed (as makedumpfile writes) or ELF (uncompressed).", ("format",),
            v.choice("format", FORMATS), v.show_plain("format"),
            options=("save --format",)),
    Setting(("memory_limit",), "SIZE|auto", "auto (half of MemAvailable, at least 56M)",
            "Memory saving may use, in bytes or with K, M or G: the page bitmaps are "
            "decided and held one window of pages at a time, and the window is sized to "
            "fit, so a dump of any size saves in it (as makedumpfile's cyclic mode). auto "
            "takes half of what /proc/meminfo's MemAvailable says in the capture kernel, at "
            "least 56M (Python with numpy alone takes about 31-35M); a SIZE below 56M is "
            "refused. "
            "save --memory-limit overrides it.", ("memory_limit",),
            v.field("memory_limit", v.memory_limit), v.show_size("memory_limit"),
            options=("save --memory-limit",)),
    Setting(("failure_action",), "|".join(FAILURE_ACTIONS), "reboot",
            "What the capture kernel does when saving fails: reboot, halt or power off; "
            "shell starts emergency.target; dump_to_rootfs saves again under path on the "
            "root file system (useful with a target), before kdump_post, which is then told "
            "0 if that saved it, then does final_action.",
            ("failure_action",),
            v.choice("failure_action", FAILURE_ACTIONS), v.show_plain("failure_action")),
    Setting(("final_action",), "|".join(FINAL_ACTIONS), "reboot",
            "What the capture kernel does after the dump is saved.", ("final_action",),
            v.choice("final_action", FINAL_ACTIONS), v.show_plain("final_action")),
    Setting(("kdump_pre",), "PROGRAM [ARG...]", "none",
            "Run before saving, as an argument vector (never through a shell). A non-zero "
            "exit status skips the dump, as in Fedora: kdump_post is not run and "
            "final_action follows.",
            ("kdump_pre",),
            v.program("kdump_pre"), v.show_words("kdump_pre")),
    Setting(("kdump_post",), "PROGRAM [ARG...]", "none",
            "Run after saving (or failing to), as an argument vector with the status "
            "appended as the last argument ($1 for a script given alone): 0 saved, "
            "1 failed.", ("kdump_post",),
            v.program("kdump_post"), v.show_words("kdump_post")),
    Setting(("method",), "|".join(METHODS), "auto",
            "The system call that loads the capture kernel, as load --method.", ("method",),
            v.choice("method", METHODS), v.show_plain("method"),
            options=("load --method", "start --method")),
    Setting(("dtb",), "PATH", "none",
            "A device tree for the capture kernel, as load --dtb: with it, method auto "
            "uses the extended kexec_file_load where the kernel offers it, which hands "
            "this tree over (the kernel sets /chosen and the reservations in it; "
            "kdumpctl-py-kexec(7)); without it, plain kexec_file_load, whose device tree "
            "the kernel builds from its own. An extended load refused with EPERM or "
            "EACCES (IMA appraisal, LoadPin) falls back to the plain call and says so.",
            ("dtb",), v.field("dtb", v.absolute), v.show_plain("dtb"),
            options=("load --dtb", "start --dtb")),
    Setting(("keep",), "N", "0 (keep every dump)",
            "Keep the newest N complete dumps under path and delete older ones after each "
            "save, newest by the crash time in their names; the dump just saved always stays "
            "and counts first, whatever its name says (a crashed kernel whose clock was wrong "
            "names it older than the others). Incomplete dumps are never deleted and do not "
            "count towards N: they are listed as kept.", ("keep",),
            v.field("keep", lambda w: v.integer(w, 0)), v.show_plain("keep")),
    Setting(("debuginfo_fetch",), "yes|no", "no",
            "Whether the next boot's report (kdumpctl-py-report.service) may download the "
            "crashed kernel's debug info with kdumpctl-py debuginfo fetch (the network, "
            "about 300 MB for a Debian kernel) when no matching vmlinux is installed; "
            "without it the report comes from kallsyms and the kernel log.",
            ("debuginfo_fetch",),
            v.yes_no("debuginfo_fetch"), v.show_yes_no("debuginfo_fetch")),
    Setting(("cmdline_append",), "PARAM...", "none",
            "Kernel parameters added to the end of the capture kernel's command line, as "
            "KDUMP_COMMANDLINE_APPEND in Fedora's /etc/sysconfig/kdump.",
            ("cmdline_append",),
            v.accumulate("cmdline_append"), v.show_words("cmdline_append"), repeat=True),
    Setting(("cmdline_remove",), "NAME...", "none",
            "Parameter names dropped from the running kernel's command line before it "
            "becomes the capture kernel's, as KDUMP_COMMANDLINE_REMOVE.",
            ("cmdline_remove",),
            v.accumulate("cmdline_remove", v.parameter_name), v.show_words("cmdline_remove"),
            repeat=True),
)


def setting(name: str) -> Setting | None:
    for s in SETTINGS:
        if name in s.names:
            return s
    return None
