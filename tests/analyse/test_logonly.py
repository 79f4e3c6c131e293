"""The report without drgn: what the next boot's report says on Debian 12."""

from __future__ import annotations

from pathlib import Path

from kdumpctl_py.analyse import logonly
from kdumpctl_py.analyse.render import to_json
from tests.analyse import panics
from tests.builders import panic_vmcore


def test_the_log_gives_panic_task_trace_and_signature(tmp_path: Path) -> None:
    vmcore = panic_vmcore(tmp_path / "vmcore", panics.BOOKWORM_X86_64)
    report = to_json(logonly.gather(str(vmcore)))
    assert report["release"] == "6.1.0-57-cloud-amd64" and report["build_id"] == "ab" * 20
    assert report["panic_message"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert report["crashed_thread"]["comm"] == "kdumpcrasher"
    assert report["backtrace_source"] == "kernel log"
    assert report["signature"]["frames"] == ["sysrq_handle_crash", "__handle_sysrq",
                                             "write_sysrq_trigger"]
    assert report["format"] == "ELF" and report["debuginfo"]["dwarf"] is False
    assert logonly.MISSING in report["missing"]
