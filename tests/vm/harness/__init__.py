"""QEMU crash-cycle harness for kdumpctl-py.

Builds a guest from Debian's own packages, boots it under software emulation,
loads a capture kernel, crashes the guest on purpose, saves /proc/vmcore from the
capture kernel onto a disk image and reads it back on the host for analysis.
`tests/vm/crash-cycle` is the command-line entry point; `cycle.py` holds the flow.
"""
