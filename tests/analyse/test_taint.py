from __future__ import annotations

from kdumpctl_py.analyse.taint import FLAGS, from_letters, meanings


def test_positional_letters_are_explained() -> None:
    flags = "G" + " " * 11 + "OE"
    assert meanings(flags) == [
        'O: externally-built ("out-of-tree") module was loaded',
        "E: unsigned module was loaded",
    ]
    assert meanings("P") == ["P: proprietary module was loaded"]


def test_letters_out_of_place_fall_back_to_the_letter() -> None:
    assert meanings("W") == ["W: kernel issued warning"]
    assert meanings("  Q") == ["Q: unknown taint flag"]


def test_untainted() -> None:
    assert from_letters("").flags == ""
    assert from_letters("G    ", 0).meanings == []
    t = from_letters("G        W   ", 1 << 9)
    assert t.flags == "G        W" and t.mask == 512 and len(t.meanings) == 1


def test_table_is_one_letter_per_bit() -> None:
    letters = [letter for letter, _ in FLAGS]
    assert len(set(letters)) == len(letters) == 20
    assert letters[9] == "W" and letters[12] == "O"
