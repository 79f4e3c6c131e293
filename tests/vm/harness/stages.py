"""The crash cycle's stages: one table read by both the guest /init and the host waiter.

Each stage runs one busybox-sh snippet in the guest, prints
`KDUMPCTL-VM: <stage> ok` or `KDUMPCTL-VM: <stage> failed rc=N` on the console,
and leaves <stage>.rc/.out/.err under /results (copied to the dump disk's
/results/<kernel>/). The host waits for each marker in table order, with the
stage's own timeout.

A stage may have several implementations. To move a stage onto kdumpctl-py,
change its `default` below: "auto" means kdumpctl-py when the built wheel has
that subcommand, else the fallback named by the stage's first command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

FIRST = "first"
CAPTURE = "capture"


@dataclass(frozen=True)
class Stage:
    """One step of the cycle, in one of the two kernels."""

    name: str
    kernel: str  # FIRST or CAPTURE
    required: bool  # a failure ends the cycle; optional stages only record rc/stderr
    timeout_s: float  # host wait, counted from the previous stage's marker
    commands: Mapping[str, str]  # implementation name -> sh snippet
    default: str = ""  # implementation to run; "" = the only one; "auto" = see module doc
    # The kdumpctl-py subcommand that "auto" looks for.
    needs_subcommand: str | None = None
    notes: str = field(default="", compare=False)


# $KDUMPCTL_PY is `kdumpctl-py --debug` (cycle._guest_env): a failing command leaves
# its traceback in results/<kernel>/<stage>.err.

# Shell fragments shared by both kernels.
_MOUNTS = (
    "mount -t sysfs sysfs /sys && mount -t devtmpfs devtmpfs /dev && "
    "mkdir -p /dev/pts /run/lock && uname -a && cat /proc/cmdline && "
    "grep -E 'MemTotal|MemFree|MemAvailable' /proc/meminfo && "
    "grep -i 'crash kernel' /proc/iomem; true"
)
_MODULES = (
    'for m in $MODULES; do insmod "$m" || exit 1; done; '
    "[ ! -e /proc/modules ] || cat /proc/modules"  # a --kernel-image may lack CONFIG_MODULES
)
_DISK = (
    "i=0; while [ ! -b /dev/vda ]; do i=$((i+1)); [ $i -gt 60 ] && exit 1; sleep 1; done; "
    "mount -t ext4 /dev/vda /mnt && mkdir -p /mnt/dumps /mnt/results"
)
_COPY_VMCORE = (
    "set -e; d=/mnt/dumps/$(date +%Y-%m-%d-%H%M%S); mkdir -p $d; ls -l /proc/vmcore; "
    "dd if=/proc/vmcore of=$d/vmcore-incomplete bs=1M; "
    "mv $d/vmcore-incomplete $d/vmcore; dmesg > $d/capture-dmesg.txt; ls -l $d"
)
# The capture's memory (memory.py reads the KDUMPCTL-VM-MEM lines): what Python
# holds once `kdumpctl-py save` has imported what it needs, and the save's peak.
_IMPORTS = (
    "t0=$(cut -d' ' -f1 /proc/uptime); python3 -X importtime -c '"
    "import kdumpctl_py.cli as c; c.build_parser([\"save\"]); "
    "import kdumpctl_py.capture.save, kdumpctl_py.service.capture, numpy, zstandard; "
    'd = dict(line.split(":", 1) for line in open("/proc/self/status")); '
    'print(*(k + "_kb=" + d[k].split()[0] for k in ("VmHWM", "RssAnon", "RssFile", "RssShmem")))'
    "' > $R/imports.rss && t1=$(cut -d' ' -f1 /proc/uptime) && "
    "memstat imported $(cat $R/imports.rss) seconds=$(awk \"BEGIN {print $t1 - $t0}\")"
)


def _measured(command: str) -> str:
    """Run a save command while memwatch samples its peak and /proc/meminfo each second;
    `memstat saved` gets them and the seconds it took by the capture kernel's clock."""
    return (
        "t0=$(cut -d' ' -f1 /proc/uptime); "
        f"{command} & p=$!; "
        "memwatch $p > $R/save.memwatch & w=$!; wait $p; rc=$?; kill $w; "
        "t1=$(cut -d' ' -f1 /proc/uptime); "
        "memstat saved $(memsummary < $R/save.memwatch) "
        "seconds=$(awk \"BEGIN {print $t1 - $t0}\")"
    )


_MEASURED_SAVE = (
    _measured("$KDUMPCTL_PY save --target /mnt/dumps $DUMP_LEVEL_ARGS $SAVE_ARGS")
    + "; exit $rc"
)
# --impl save=makedumpfile: the suite's makedumpfile (makedumpfile.py puts it in the
# capture initramfs) at the cycle's dump level (31 by default), zlib, measured alike;
# the dump is renamed from vmcore-incomplete once makedumpfile has written it whole.
_MAKEDUMPFILE_SAVE = (
    "d=/mnt/dumps/$(date +%Y-%m-%d-%H%M%S) && mkdir -p $d || exit 1; "
    + _measured("makedumpfile -c -d $MDF_DUMP_LEVEL /proc/vmcore $d/vmcore-incomplete")
    + "; if [ $rc = 0 ]; then mv $d/vmcore-incomplete $d/vmcore || rc=1; fi; "
    "dmesg > $d/capture-dmesg.txt; "
    "ls -l $d; exit $rc"
)
# The crashing task names itself so the dump can be checked for it (drgn's vmtest
# does the same). The shell's builtins write both files from the one process.
# --crash oops: the module oopses in its init, in insmod, and panic_on_oops panics.
_CRASH = (
    'if [ "$CRASH" = oops ]; then echo 1 > /proc/sys/kernel/panic_on_oops && '
    'insmod "$OOPS_MODULE"; else '
    "sh -c 'printf kdumpcrasher > /proc/self/comm && echo c > /proc/sysrq-trigger'; fi"
)
# --impl save=capture: what kdumpctl-py-capture.service runs, with a configuration
# that saves under the dump disk; zlib, which every suite's crash and makedumpfile read.
_CAPTURE = (
    "printf 'path /mnt/dumps\\ncompress zlib\\n' > /tmp/kdump.conf && "
    "KDUMPCTL_CONFIG=/tmp/kdump.conf $KDUMPCTL_PY capture --no-action"
)
# --whole-copy: every page of /proc/vmcore, for comparing page filters on the host.
_WHOLE_COPY = (
    '[ -z "$WHOLE_COPY" ] || { set -e; d=/mnt/dumps/whole; mkdir -p $d; '
    "dd if=/proc/vmcore of=$d/copy-incomplete bs=1M; mv $d/copy-incomplete $d/copy.elf; }"
)
# --dtb-marker: the boot DTB plus /chosen/kdumpctl-py,marker and what the kernel's
# merge rules drop (marker_dtb.py), for `kdumpctl-py start --dtb`.
_MARKER_DTB = (
    '[ -z "$DTB_MARKER" ] || '
    'python3 /etc/kdumpctl-vm/marker_dtb.py /sys/firmware/fdt /tmp/capture.dtb "$DTB_MARKER"'
)
# --dtb-marker, in the capture kernel: the marker, and the DTB it booted with.
_CAPTURE_DT = (
    '[ -z "$DTB_MARKER" ] || { cat /proc/device-tree/chosen/kdumpctl-py,marker && '
    "cp /sys/firmware/fdt $R/capture.dtb; }"
)

# --load-limits REBOOT PANIC: the kexec load limits set before the load, then status,
# status --json and start --dry-run, each followed by the counts, which must not move:
# a probe would spend a load (kexec_load_permitted() counts before it looks at flags).
_LIMIT_COUNTS = (
    'counts() { echo "$1 reboot=$(cat /proc/sys/kernel/kexec_load_limit_reboot) '
    'panic=$(cat /proc/sys/kernel/kexec_load_limit_panic)"; }'
)
_LIMITS = (
    '[ -z "$LOAD_LIMITS" ] || { set -- $LOAD_LIMITS; '
    "echo $1 > /proc/sys/kernel/kexec_load_limit_reboot && "
    "echo $2 > /proc/sys/kernel/kexec_load_limit_panic || exit 1; "
    f"{_LIMIT_COUNTS}; counts set; "
    "$KDUMPCTL_PY status > $R/limits-status.txt; counts status; "
    "$KDUMPCTL_PY status --json > $R/limits-status.json; counts status-json; "
    '$KDUMPCTL_PY start --dry-run --kernel "$KERNEL" --initrd "$INITRD" $START_ARGS '
    "> $R/limits-dry-run.txt || exit 1; counts dry-run; }"
)
_LIMITS_LOADED = f'[ -z "$LOAD_LIMITS" ] || {{ {_LIMIT_COUNTS}; counts loaded; }}'

# --impl STAGE=skip for the first kernel's probes that a cycle does not look at (the
# kernel matrix): each is a Python start under TCG, 2-20 s of guest time.
_SKIP = {"skip": "true"}

STAGES: tuple[Stage, ...] = (
    Stage("boot", FIRST, True, 300, {"sh": _MOUNTS},
          notes="kernel boot, initramfs unpack, /sys and /dev mounted"),
    Stage("modules", FIRST, True, 120, {"sh": _MODULES}),
    Stage("disk", FIRST, True, 120, {"sh": _DISK}),
    Stage("status", FIRST, False, 600,
          {"kdumpctl-py": "$KDUMPCTL_PY status --json > /mnt/status.json", **_SKIP}),
    Stage("snapshot", FIRST, False, 600,
          {"kdumpctl-py": "$KDUMPCTL_PY snapshot /mnt/snapshot.tar.gz", **_SKIP}),
    Stage("check", FIRST, False, 300,
          {"sh": '[ -z "$CHECK_SCRIPT" ] || python3 "$CHECK_SCRIPT" "$KERNEL" "$INITRD"'},
          notes="--check-script, before anything is loaded"),
    Stage("dtb", FIRST, True, 120, {"sh": _MARKER_DTB}),
    Stage("limits", FIRST, False, 600, {"sh": _LIMITS},
          notes="--load-limits: status, status --json, start --dry-run spend no load"),
    Stage("load", FIRST, True, 600,
          {
              "kexec-tools": 'kexec -p $KEXEC_TOOLS_ARGS "$KERNEL" --initrd="$INITRD" '
                             '--append="$CAPTURE_APPEND"',
              "kdumpctl-py": '$KDUMPCTL_PY start --kernel "$KERNEL" --initrd "$INITRD" '
                             "$START_ARGS",
          },
          default="auto", needs_subcommand="start"),
    Stage("loaded", FIRST, True, 60,
          {"sh": "cat /sys/kernel/kexec_crash_loaded; "
                 "[ \"$(cat /sys/kernel/kexec_crash_loaded)\" = 1 ]"}),
    Stage("limits-loaded", FIRST, False, 60, {"sh": _LIMITS_LOADED},
          notes="--load-limits: the load spent one panic load"),
    Stage("check-loaded", FIRST, False, 300,
          {"sh": '[ -z "$CHECK_SCRIPT" ] || python3 "$CHECK_SCRIPT" "$KERNEL" "$INITRD"'},
          notes="--check-script again, with the capture kernel loaded"),
    Stage("selftest", FIRST, False, 300,
          {"sh": '[ -z "$SELFTEST" ] || "$SELFTEST" "$KERNEL" "$INITRD"'},
          notes="--selftest: a kselftest (TAP), with the capture kernel loaded"),
    Stage("status-loaded", FIRST, False, 600,
          {"kdumpctl-py": "$KDUMPCTL_PY status --json", **_SKIP},
          notes="kdump operational now; the probes left the loaded kernel alone"),
    Stage("estimate", FIRST, False, 300,
          {"kdumpctl-py": "$KDUMPCTL_PY estimate --json", **_SKIP},
          notes="the reservation kdumpctl-py estimates for this guest and capture initramfs"),
    Stage("busy", FIRST, True, 600,
          {"sh": '[ -z "$BUSY" ] || python3 /etc/kdumpctl-vm/busy.py'},
          notes="--busy: page cache, shmem, slab, anonymous and hugetlb pages (busy.py)"),
    Stage("sync", FIRST, True, 120,
          {"sh": "persist && sync && mount -o remount,ro /mnt"}),
    Stage("crash", FIRST, True, 120, {"sh": _CRASH},
          notes="never prints ok: the next marker comes from the capture kernel"),
    Stage("capture-boot", CAPTURE, True, 600, {"sh": _MOUNTS + "; memstat unpacked"},
          notes="memstat: after the kernel's init and the initramfs unpacking"),
    Stage("capture-modules", CAPTURE, True, 120, {"sh": _MODULES}),
    Stage("capture-disk", CAPTURE, True, 120, {"sh": _DISK}),
    Stage("capture-imports", CAPTURE, False, 300, {"sh": _IMPORTS},
          notes="Python with what save imports: peak RSS, import time (-X importtime)"),
    Stage("capture-dt", CAPTURE, False, 60, {"sh": _CAPTURE_DT}),
    Stage("save", CAPTURE, True, 1800,
          {
              "copy": _COPY_VMCORE,
              "kdumpctl-py": _MEASURED_SAVE,
              "capture": _CAPTURE,
              "makedumpfile": _MAKEDUMPFILE_SAVE,
          },
          default="auto", needs_subcommand="save"),
    Stage("whole-copy", CAPTURE, True, 1800, {"sh": _WHOLE_COPY}),
    Stage("capture-dmesg", CAPTURE, False, 120, {"sh": "dmesg > $R/capture-dmesg.txt"}),
    Stage("finish", CAPTURE, True, 120, {"sh": "persist && sync && umount /mnt"}),
)

# After the last stage the guest runs `reboot -f`; QEMU (-no-reboot) then exits.
EXIT_TIMEOUT_S = 120.0


def by_name(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(name)


def choose(stage: Stage, subcommands: frozenset[str],
           override: Mapping[str, str] | None = None) -> str:
    """The implementation a stage runs this time.

    `override` maps stage name -> implementation (the CLI's --loader).
    """
    if override and stage.name in override:
        impl = override[stage.name]
        if impl not in stage.commands:
            raise ValueError(f"stage {stage.name} has no implementation {impl!r}")
        return impl
    if stage.default == "auto":
        if stage.needs_subcommand in subcommands and "kdumpctl-py" in stage.commands:
            return "kdumpctl-py"
        return next(iter(stage.commands))
    return stage.default or next(iter(stage.commands))
