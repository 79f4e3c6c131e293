"""Loaded kernel modules, as crash's `mod`: name, base, size, taints, debug info."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdumpctl_py.analyse.model import Module

if TYPE_CHECKING:
    from kdumpctl_py.analyse.program import Opened


def read(opened: Opened) -> list[Module]:
    from drgn.helpers.linux.module import for_each_module, module_address_regions, module_taints

    missing = set(opened.missing_modules)
    out = []
    for mod in for_each_module(opened.prog):
        name = mod.name.string_().decode("utf-8", "backslashreplace")
        address = size = None
        try:
            regions = [(start, length) for start, length in module_address_regions(mod)
                       if length]
            if regions:
                address = min(start for start, _ in regions)
                size = sum(length for _, length in regions)
        except (AttributeError, LookupError):
            pass
        try:
            taints = module_taints(mod)
        except (AttributeError, LookupError):
            taints = ""
        out.append(Module(name, address, size, taints, name not in missing))
    return sorted(out, key=lambda m: m.name)
