"""One reader of ELF notes for every layer: vmcore notes strictly, vmlinux's leniently."""

from __future__ import annotations

import pytest

from kdumpctl_py.elf import Note, iter_notes, notes_before_damage
from kdumpctl_py.errors import UsageError
from kdumpctl_py.facts.elfcore import parse_notes
from tests.elfwriter import note

BLOB = note(b"GNU", 3, b"\x01\x02\x03") + note(b"Linux", 256, b"")


def test_notes_round_trip_with_where_desc_starts() -> None:
    assert list(iter_notes(BLOB)) == [Note("GNU", 3, b"\x01\x02\x03", 16),
                                      Note("Linux", 256, b"", 20 + 20)]
    assert list(iter_notes(b"")) == []


def test_a_zero_header_ends_the_list() -> None:
    assert [n.name for n in iter_notes(BLOB[:20] + bytes(12) + BLOB[20:])] == ["GNU"]


def test_big_endian() -> None:
    swapped = (4).to_bytes(4, "big") + (3).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert list(iter_notes(swapped + BLOB[12:20], little_endian=False)) == [
        Note("GNU", 3, b"\x01\x02\x03", 16)]


def test_a_note_past_the_end_is_an_error_for_a_vmcore_and_the_end_for_vmlinux() -> None:
    damaged = BLOB + BLOB[:18]  # the third note's desc is cut
    with pytest.raises(UsageError, match="vmcore: a note runs past the end of its segment"):
        parse_notes(damaged, "vmcore")
    assert [n.name for n in notes_before_damage(damaged)] == ["GNU", "Linux"]
