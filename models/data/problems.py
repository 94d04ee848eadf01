"""Small helpers that phrase dataset problems the same way everywhere, and keep them short.

Messages reach clients of the service, so anything that comes from the data (column names, cell
values) is clipped, and long listings are summarised instead of echoed in full.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

MAX_LISTED = 20
MAX_SHOWN_CHARS = 40
# Who reads a message: a command line user (options are flags, ``--text-column``) or an API client
# (options are form fields / keyword arguments, ``text_column``).
OptionStyle = Literal["cli", "api"]


def option(name: str, style: OptionStyle = "cli") -> str:
    """Name a loader option the way the caller spells it: ``--text-column`` or ``text_column``."""
    return "--" + name.replace("_", "-") if style == "cli" else name


def clip(text: str, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with an ellipsis when cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: object, limit: int = MAX_SHOWN_CHARS) -> str:
    """A value's ``repr`` for a message, clipped, so a huge cell or column name is never echoed whole."""
    if isinstance(value, str):
        return repr(clip(value, limit))
    try:
        return clip(repr(value), limit)
    except (RecursionError, ValueError):  # a deeply nested value, an int too long to print
        return f"<{type(value).__name__}>"


def fmt_names(names: Iterable[str], limit: int = MAX_LISTED) -> str:
    """Phrase column names for a message, e.g. ``'a', 'b', ... (and 3 more)``."""
    names = list(names)
    listed = ", ".join(shown(n) for n in names[:limit])
    rest = len(names) - limit
    return listed + (f", ... (and {rest} more)" if rest > 0 else "")


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
    shown_rows = ", ".join(map(str, ordered[:limit]))
    rest = len(ordered) - limit
    return f"rows {shown_rows}" + (f", ... (and {rest} more)" if rest > 0 else "")


def fmt_values(values: Iterable[object], limit: int = 5) -> str:
    """Phrase a few distinct values for a message, e.g. ``'a', 'b', ...`` (each clipped)."""
    distinct: list[str] = []
    more = False
    for value in values:
        text = shown(value)
        if text in distinct:
            continue
        if len(distinct) == limit:
            more = True
            break
        distinct.append(text)
    return ", ".join(distinct) + (", ..." if more else "")
