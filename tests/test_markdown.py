"""The one Markdown-table renderer."""

import pytest

from edgecompress._markdown import table


def test_table_cells_alignment_and_escaping():
    text = table(["name", "bytes"], [["a|b", 1_024], [None, 3]], align="lr")
    assert text.splitlines() == ["| name | bytes |", "|---|---:|", "| a\\|b | 1024 |", "|  | 3 |"]


def test_table_refuses_bad_alignment():
    with pytest.raises(ValueError, match="`align` must hold one 'l' or 'r' per column"):
        table(["a"], [], align="c")
