from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdumpctl_py.errors import KdumpError
from kdumpctl_py.facts.view import META, SystemView
from kdumpctl_py.load.loader import unload
from kdumpctl_py.plan.load import LoadRequest, plan_load
from tests.cli.test_showmem import synthetic_snapshot


def test_unload_and_load_word_a_kernel_without_kexec_alike(tmp_path: Path) -> None:
    root = synthetic_snapshot(tmp_path, loaded=True)
    meta = json.loads((root / META).read_text())
    meta["probes"] = {"extended": "missing", "kexec_file_load": "missing",
                      "kexec_load": "missing"}
    (root / META).write_text(json.dumps(meta))
    view = SystemView(root)
    with pytest.raises(KdumpError) as loading:
        plan_load(view, LoadRequest())
    with pytest.raises(KdumpError) as unloading:
        unload(view)
    why = "this kernel was built without kexec (CONFIG_KEXEC*)"
    assert str(loading.value) == f"cannot load a capture kernel: {why}"
    assert str(unloading.value) == f"cannot unload a capture kernel: {why}"
