"""The kernel series in kernel/patches/SERIES: their ABI equals kdumpctl_py.load.extended's,
their form.

The numbers and the struct layouts are parsed out of the patch text (the lines it
adds to include/uapi/linux/kexec.h), so the two sides cannot drift apart silently.
checkpatch runs on kernel/build's unpacked source package: with --vm after the lane's
build of the series has unpacked it, without when a build has left it (skipped otherwise).
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kdumpctl_py.load import extended
from tests.kernel import build_module

REPO = Path(__file__).resolve().parents[2]
SERIES = {d.name: sorted(d.glob("*.patch"))
          for d in sorted((REPO / "kernel" / "patches").iterdir()) if d.is_dir()}
ALL = [(name, p) for name, patches in SERIES.items() for p in patches]
MAN = REPO / "man" / "kdumpctl-py-kexec.7"
UAPI = "include/uapi/linux/kexec.h"

# (C type) -> (size, signed); the uapi header uses only these.
C_TYPES = {"__u32": (4, False), "__s32": (4, True)}
CTYPES = {ctypes.c_uint32: (4, False), ctypes.c_int32: (4, True)}


def added_lines(series: str, path: str, context: bool = False) -> list[str]:
    """The lines the series adds to `path`, in order, without the leading '+'; with
    `context`, the hunks' context lines too (the post-image of each hunk)."""
    out: list[str] = []
    for patch in SERIES[series]:
        current = None
        for line in patch.read_text().splitlines():
            if line.startswith("+++ "):
                current = line[6:] if line.startswith("+++ b/") else None
            elif line.startswith("diff --git") or line == "-- ":
                current = None
            elif current == path and (line.startswith("+") or context and line[:1] == " "):
                out.append(line[1:])
    return out


def uapi_defines(series: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2), 0)
            for line in added_lines(series, UAPI)
            if (m := re.match(r"#define\s+(\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", line))}


def uapi_struct(series: str, name: str) -> list[tuple[str, str, bool]]:
    """(C type, field name, is flexible array) for each field of `struct name` in the patch."""
    text = "\n".join(added_lines(series, UAPI))
    m = re.search(rf"struct {name} \{{(.*?)\}};", text, re.S)
    assert m, f"the series adds no struct {name} to {UAPI}"
    fields = []
    for decl in m.group(1).split(";"):
        decl = re.sub(r"/\*.*?\*/", "", decl).strip()
        if not decl:
            continue
        fm = re.fullmatch(r"(struct \w+|\w+)\s+(\w+)(\[\])?", decl)
        assert fm, f"cannot read the field {decl!r} of struct {name}"
        fields.append((fm.group(1), fm.group(2), fm.group(3) is not None))
    return fields


def c_layout(fields: list[tuple[str, str, bool]]) -> list[tuple[str, int, int, bool]]:
    """(name, offset, size, signed) of scalar fields, natural alignment, as the C ABI lays
    them out; a flexible array of struct kexec_file_fd is (name, offset, 8, False)."""
    out, offset = [], 0
    for ctype, name, flexible in fields:
        if ctype == "struct kexec_file_fd":
            assert flexible
            size, signed, align = 8, False, 4
        else:
            size, signed = C_TYPES[ctype]
            align = size
        offset = -(-offset // align) * align
        out.append((name, offset, size, signed))
        offset += 0 if flexible else size
    return out


def ctypes_layout(struct: type[ctypes.Structure]) -> list[tuple[str, int, int, bool]]:
    out = []
    for name, ctype in struct._fields_:  # type: ignore[misc]
        field = getattr(struct, name)
        if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
            size, signed = ctypes.sizeof(ctype._type_), False  # type: ignore[arg-type]
        else:
            size, signed = CTYPES[ctype]
        out.append((name, field.offset, size, signed))
    return out


def test_both_series_are_kept() -> None:
    assert set(SERIES) == set(build_module().SERIES)


@pytest.mark.parametrize("series", SERIES)
def test_the_series_is_numbered_and_signed_off(series: str) -> None:
    patches = SERIES[series]
    assert [p.name[:5] for p in patches] == [f"{i:04d}-" for i in range(1, len(patches) + 1)]
    for i, patch in enumerate(patches, 1):
        text = patch.read_text()
        assert re.search(rf"^Subject: \[PATCH {i}/{len(patches)}\] \S", text, re.M), patch.name
        assert re.search(r"^Signed-off-by: .+ <[^>]+@[^>]+>$", text, re.M), patch.name
        message = text.split("\n---\n", 1)[0]
        assert len(message.split("\n\n")) >= 3, f"{patch.name}: no commit message body"


@pytest.mark.parametrize("series", SERIES)
def test_flag_and_types_equal_the_user_space_side(series: str) -> None:
    defines = uapi_defines(series)
    assert defines["KEXEC_FILE_FDSET"] == extended.KEXEC_FILE_FDSET
    assert defines["KEXEC_FILE_TYPE_KERNEL"] == extended.KEXEC_FILE_TYPE_KERNEL
    assert defines["KEXEC_FILE_TYPE_INITRD"] == extended.KEXEC_FILE_TYPE_INITRD
    assert defines["KEXEC_FILE_TYPE_DTB"] == extended.KEXEC_FILE_TYPE_DTB
    assert defines["KEXEC_FDSET_MAX"] == extended.KEXEC_FDSET_MAX


@pytest.mark.parametrize("series", SERIES)
def test_the_flag_is_a_bit_no_kernel_flag_uses(series: str) -> None:
    flag = uapi_defines(series)["KEXEC_FILE_FDSET"]
    assert flag & (flag - 1) == 0
    # UNLOAD, ON_CRASH, NO_INITRAMFS, DEBUG (6.12); NO_CMA and FORCE_DTB (6.17 on).
    assert flag not in (0x1, 0x2, 0x4, 0x8, 0x10, 0x20)


@pytest.mark.parametrize("series", SERIES)
def test_struct_layouts_equal_the_user_space_side(series: str) -> None:
    assert c_layout(uapi_struct(series, "kexec_file_fd")) == ctypes_layout(extended.KexecFileFd)
    assert c_layout(uapi_struct(series, "kexec_fdset")) == ctypes_layout(extended.fdset_type(3))
    assert ctypes.sizeof(extended.KexecFileFd) == 8
    filled = extended.fdset([(extended.KEXEC_FILE_TYPE_KERNEL, 5),
                             (extended.KEXEC_FILE_TYPE_DTB, -2)])
    assert bytes(filled) == bytes.fromhex("02000000" "00000000 05000000" "02000000 feffffff")


@pytest.mark.parametrize("series", SERIES)
def test_the_syscall_reads_everything_before_touching_the_loaded_kernel(series: str) -> None:
    text = "\n".join(added_lines(series, "kernel/kexec_file.c", context=True))
    assert re.search(r"SYSCALL_DEFINE6\(kexec_file_load,.*?"
                     r"const struct kexec_fdset __user \*, fdset\)", text, re.S)
    body = text.split("SYSCALL_DEFINE6", 1)[1]
    # The probe's contract: the set is read before anything else (the files, then
    # the lock: below).
    assert body.index("kexec_file_get_fdset(") < body.index("kimage_file_alloc_read(")
    # The patch that moves the reads: the files (the DTB among them, read by
    # kimage_file_read_input) are read and checked before the lock, and the old
    # crash kernel is freed only after it, so a refused load leaves it loaded.
    moving = [p for p in SERIES[series] if "+\tif (!kexec_trylock()) {" in p.read_text()]
    assert len(moving) == 1
    added = "\n".join(line for line in moving[0].read_text().splitlines()
                      if line.startswith("+"))
    assert (added.index("kimage_file_alloc_read(&image") < added.index("kexec_trylock()")
            < added.index("kimage_file_init(image, flags)"))
    assert "ret = kimage_file_read_dtb(image, dtb_fd);" in "\n".join(
        added_lines(series, "kernel/kexec_file.c"))


@pytest.mark.parametrize("series", SERIES)
def test_the_dtb_has_its_own_ima_hook_and_lsm_cases(series: str) -> None:
    assert "\thook(KEXEC_DTB_CHECK, kexec_dtb)\t\t\\" in added_lines(
        series, "security/integrity/ima/ima.h")
    assert "\t[READING_KEXEC_DTB] = KEXEC_DTB_CHECK," in added_lines(
        series, "security/integrity/ima/ima_main.c")
    assert "\tcase READING_KEXEC_DTB:" in added_lines(series, "security/ipe/hooks.c")
    # The load ids come from the same list: LOADING_KEXEC_DTB exists too, and the
    # hooks that switch on them (and SELinux's count of them) must know it.
    assert "\tcase LOADING_KEXEC_DTB:" in added_lines(series, "security/ipe/hooks.c")
    if series != "6.12":  # 6.12's SELinux checks modules only, kexec files not at all
        selinux = added_lines(series, "security/selinux/hooks.c")
        assert "\tcase READING_KEXEC_DTB:" in selinux and "\tcase LOADING_KEXEC_DTB:" in selinux
        assert "\tBUILD_BUG_ON_MSG(READING_MAX_ID > 9," in selinux
        assert "\tBUILD_BUG_ON_MSG(LOADING_MAX_ID > 9," in selinux


@pytest.mark.parametrize("series", SERIES)
def test_arm64_and_riscv_opt_in(series: str) -> None:
    """Both build the next kernel's DTB with of_kexec_alloc_and_setup_fdt(); each
    refuses a result larger than its boot protocol maps."""
    for arch, limit in (("arm64", "SZ_2M"), ("riscv", "MAX_FDT_SIZE")):
        kconfig = added_lines(series, f"arch/{arch}/Kconfig")
        assert "config ARCH_SUPPORTS_KEXEC_FILE_FDSET" in kconfig, arch
        code = "\n".join(added_lines(series, f"arch/{arch}/kernel/machine_kexec_file.c"))
        assert re.search(rf"if \((dtb_len|fdt_totalsize\(fdt\)) > {limit}\)", code), arch


@pytest.mark.parametrize("series", SERIES)
def test_the_merge_keeps_and_drops_what_the_issue_lists(series: str) -> None:
    text = "\n".join(added_lines(series, "drivers/of/kexec.c"))
    kept = text.split("kexec_chosen_kept[] = {", 1)[1].split("};", 1)[0]
    owned = text.split("kexec_chosen_owned[] = {", 1)[1].split("};", 1)[0]
    for name in ("linux,uefi-system-table", "linux,uefi-mmap-start", "linux,uefi-mmap-size",
                 "linux,uefi-mmap-desc-size", "linux,uefi-mmap-desc-ver",
                 "linux,ima-kexec-buffer"):
        assert f'"{name}"' in kept, name
    assert '"rng-seed"' in owned
    assert '"/reserved-memory"' in text and "fdt_num_mem_rsv(running)" in text
    assert '"#address-cells"' in text and '"#size-cells"' in text


@pytest.mark.parametrize("series", SERIES)
def test_the_man_page_states_the_same_numbers(series: str) -> None:
    text = MAN.read_text()
    for name, value in uapi_defines(series).items():
        if name.startswith(("KEXEC_FILE_FDSET", "KEXEC_FILE_TYPE_", "KEXEC_FDSET_MAX")):
            m = re.search(rf'#define {name}\s+(\S+?)"', text)
            assert m and int(m.group(1), 0) == value, name


@pytest.mark.parametrize("series", SERIES)
def test_the_man_page_lists_what_the_merge_keeps_and_drops(series: str) -> None:
    """Every /chosen property the kernel keeps from the running tree or writes itself,
    as the patch's own arrays name them, is in kdumpctl-py-kexec(7)."""
    page = MAN.read_text().replace("\\-", "-")
    text = "\n".join(added_lines(series, "drivers/of/kexec.c"))
    for array in ("kexec_chosen_kept", "kexec_chosen_owned"):
        body = text.split(f"{array}[] = {{", 1)[1].split("};", 1)[0]
        names = re.findall(r'"([^"]+)"', body)
        assert names, array
        for name in names:
            assert f".BR {name} ," in page or f".B {name}\n" in page, name


def test_the_man_page_tells_the_abi_facts_apart() -> None:
    """Byte order, the two EBADF cases, and one story about lockdown and IMA."""
    page = MAN.read_text().replace("\\-", "-")
    assert "native byte order" in page
    ebadf = page.split(".B EBADF\n", 2)[2].split(".TP", 1)[0]
    assert "negative" in ebadf and "not open for reading" in ebadf
    assert "func=KEXEC_DTB_CHECK" in page and "KEXEC_INITRAMFS_CHECK" not in page
    assert "only call lockdown allows" not in page


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="mandoc is not installed")
def test_the_man_page_is_lint_clean() -> None:
    r = subprocess.run(["mandoc", "-Tlint", str(MAN)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# checkpatch reads stringified macro arguments as expressions: every line of
# __kernel_read_file_id (kernel-module, kexec-image, ...) gets this CHECK, the new
# kexec-dtb line too. Nothing else is allowed.
KNOWN_FALSE_POSITIVE = re.compile(
    r"CHECK: spaces preferred around that '-' \(ctx:VxV\)\n"
    r"#\d+: FILE: include/linux/kernel_read_file\.h:\d+:\n"
    r"\+\tid\(\w+, [\w-]+\)\t+\\\n[ \t]*\^\n")


@pytest.mark.parametrize(("series", "patch"), ALL, ids=[f"{s}-{p.name[:4]}" for s, p in ALL])
def test_checkpatch_strict(series: str, patch: Path,
                           kernel_source: Callable[[str], Path]) -> None:
    source = kernel_source(series)
    if shutil.which("perl") is None:
        pytest.skip("perl is not installed")
    r = subprocess.run(["perl", "scripts/checkpatch.pl", "--strict", "--no-color", str(patch)],
                       cwd=source, capture_output=True, text=True)
    out = KNOWN_FALSE_POSITIVE.sub("", r.stdout)
    m = re.search(r"total: (\d+) errors, (\d+) warnings, (\d+) checks", out)
    assert m, r.stdout + r.stderr
    allowed = len(KNOWN_FALSE_POSITIVE.findall(r.stdout))
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3)) - allowed) == (0, 0, 0), out


@pytest.mark.parametrize("series", SERIES)
def test_the_series_applies_to_the_cached_source(series: str, tmp_path: Path,
                                                 kernel_source: Callable[[str], Path]) -> None:
    source = kernel_source(series)
    if shutil.which("patch") is None:
        pytest.skip("patch is not installed")
    patches = SERIES[series]
    touched = sorted({f for p in patches
                      for f in re.findall(r"^\+\+\+ b/(\S+)", p.read_text(), re.M)})
    for f in touched:
        if (source / f).exists():
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / f, tmp_path / f)
    for p in patches:
        r = subprocess.run(["patch", "-p1", "-s", "-N", "-i", str(p)], cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{p.name}: {r.stdout}{r.stderr}"


def test_the_cover_letter_names_the_series_and_answers_2017() -> None:
    text = (REPO / "kernel" / "cover-letter.txt").read_text()
    newest = SERIES[max(SERIES, key=lambda s: tuple(map(int, s.split("."))))]
    assert re.search(rf"^Subject: \[PATCH 0/{len(newest)}\] ", text, re.M)
    for patch in newest:
        subject = re.search(r"^Subject: \[PATCH \d+/\d+\] (.+(?:\n .+)*)", patch.read_text(), re.M)
        assert subject, patch.name
        assert " ".join(subject.group(1).split()) in " ".join(text.split()), patch.name
    # The objection that ended AKASHI's attempt, and what answers it.
    assert "AKASHI" in text and "may not be allowed to specify a device tree" in text
    for answer in ("Lockdown", "KEXEC_DTB_CHECK", "The merge", "Nothing is lost"):
        assert answer in text, answer
    assert "size field" in text  # the decision on an extensible struct, in writing
    assert re.search(r"placeholder", text, re.I) and "No one has signed" in text
