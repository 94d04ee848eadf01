"""Small helpers that phrase dataset problems the same way everywhere."""

from __future__ import annotations

from collections.abc import Iterable

MAX_LISTED = 20


def fmt_rows(rows: Iterable[int], limit: int = MAX_LISTED) -> str:
    """Phrase a set of 1-based row numbers, e.g. ``rows 3, 7 and 9``.

    Args:
        rows: Row numbers (any order, duplicates allowed).
        limit: How many to list before summarising the rest.

    Returns:
        ``row 3``, ``rows 3, 7, 9`` or ``rows 3, 7, ... (and 12 more)``.
    """
    ordered = sorted(set(rows))
    if len(ordered) == 1:
        return f"row {ordered[0]}"
    shown = ", ".join(map(str, ordered[:limit]))
    rest = len(ordered) - limit
    return f"rows {shown}" + (f", ... (and {rest} more)" if rest > 0 else "")


def fmt_values(values: Iterable[object], limit: int = 5) -> str:
    """Phrase a few distinct values for a message, e.g. ``'a', 'b', ...``."""
    distinct: list[object] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    shown = ", ".join(repr(v) for v in distinct[:limit])
    return shown + (", ..." if len(distinct) > limit else "")
