"""Post-mortem analysis of a saved vmcore with drgn (`kdumpctl-py analyse`).

One module per concept: `debuginfo` finds the vmlinux whose build ID matches
the dump, `program` opens the dump with it, `report` gathers what drgn can read
into a `Report` (`model` holds it and its parts as data; `tasks`, `memory`,
`modules`, `kernlog` and `taint` each gather one part; `nodwarf` the part that
needs no DWARF), and `render` prints it as text or JSON. `fetch` and `apt`
download Debian's -dbg vmlinux.

Only `program`, `report` and the gatherers import drgn, and only when called:
the pure parts (build-ID matching, log parsing, rendering) run without it.
"""
