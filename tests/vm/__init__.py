"""The VM tier: QEMU crash cycles (`pytest --vm`), their harness and its builders.

A package, so that the tests, `crash-cycle` and the builders run by hand
(`python3 -m tests.vm.installed_cycle`) import one copy of each module, typed.
"""
