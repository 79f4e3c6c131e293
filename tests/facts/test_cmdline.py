from __future__ import annotations

from kdumpctl_py.facts.cmdline import param_values, split_cmdline


def test_quotes_group_words() -> None:
    assert split_cmdline('root=/dev/vda  quiet dyndbg="file x +p" crashkernel=256M') == [
        "root=/dev/vda", "quiet", "dyndbg=file x +p", "crashkernel=256M"]


def test_last_value_listed_last() -> None:
    line = "crashkernel=128M console=ttyS0 crashkernel=1G-:256M"
    assert param_values(line, "crashkernel") == ["128M", "1G-:256M"]
    assert param_values(line, "nokaslr") == []
