"""The one Markdown-table renderer (reports, benchmark tables, transform reports).

Imports nothing, so the families, ``bench`` and ``report`` can all use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence], align: str = "") -> str:
    """A Markdown table.

    Args:
        header: the column titles.
        rows: one sequence of cells per row; a cell is shown with ``str``, None as empty, and a
            ``|`` inside it is escaped.
        align: one character per column, ``l`` (default) or ``r`` (right-aligned numbers).

    Returns:
        The table, without a trailing newline.
    """
    if align.strip("lr") or len(align) > len(header):
        raise ValueError(f"`align` must hold one 'l' or 'r' per column (at most {len(header)}). "
                         f"Received: align={align!r}")
    rule = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = [_row(header), "|" + "|".join(rule) + "|"]
    lines += [_row(cells) for cells in rows]
    return "\n".join(lines)


def _row(cells) -> str:
    return "| " + " | ".join("" if c is None else str(c).replace("|", "\\|") for c in cells) + " |"
