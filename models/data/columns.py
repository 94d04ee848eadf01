"""Decide which columns hold the text, the optional second text, the label, the split and the group.

Columns the user names must exist. Columns the user leaves out are detected from common names
(case-insensitive); when two columns fit, the user must choose: guessing wrong would silently
train on the wrong target.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.data.problems import OptionStyle, fmt_names, option, shown

TEXT_NAMES = ("text", "sentence", "review", "content", "document", "body", "tweet", "comment", "message")
# (first text, second text) pairs, tried before single text names.
PAIR_NAMES = (
    ("sentence1", "sentence2"),
    ("text_a", "text_b"),
    ("text", "text_pair"),
    ("text1", "text2"),
    ("premise", "hypothesis"),
    ("question1", "question2"),
)
LABEL_NAMES = ("label", "labels", "target", "class", "category", "score", "sentiment", "gold_label")
SPLIT_NAMES = ("split",)


@dataclass(frozen=True)
class Columns:
    """The resolved column roles of a table."""

    text: str
    label: str
    pair: str | None = None
    split: str | None = None
    group: str | None = None


def _lookup(available: list[str], names: tuple[str, ...], taken: set[str]) -> list[str]:
    lower = {c.lower(): c for c in available if c not in taken}
    return [lower[n] for n in names if n in lower]


def _given(available: list[str], flag: str, name: str, problems: list[str]) -> str | None:
    if name in available:
        return name
    close = [c for c in available if c.lower() == name.lower()]
    hint = f" (did you mean {shown(close[0])}?)" if close else ""
    problems.append(f"{flag} {shown(name)} is not a column{hint}; available columns: {fmt_names(available)}")
    return None


def resolve_columns(
    available: list[str],
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    group_column: str | None = None,
    detect_split: bool = True,
    option_style: OptionStyle = "cli",
) -> tuple[Columns | None, list[str]]:
    """Resolve column roles; return ``(columns or None, problems)``.

    Args:
        available: The table's columns.
        text_column: Given text column, else detected.
        text_pair_column: Given second-text column; detected only together with the text column.
        label_column: Given label column, else detected.
        split_column: Given split column; else a column named ``split`` if ``detect_split``.
        group_column: Column whose values must not span train and dev (never detected).
        detect_split: Whether to pick up a ``split`` column nobody asked for.
        option_style: How messages name options (``cli`` flags or ``api`` field names).

    Returns:
        The roles (None when the text or label column is unknown) and every problem found.
    """
    problems: list[str] = []

    def flag(name: str) -> str:
        return option(name, option_style)

    cols = {
        "text": text_column and _given(available, flag("text_column"), text_column, problems),
        "pair": text_pair_column and _given(available, flag("text_pair_column"), text_pair_column, problems),
        "label": label_column and _given(available, flag("label_column"), label_column, problems),
        "split": split_column and _given(available, flag("split_column"), split_column, problems),
        "group": group_column and _given(available, flag("group_column"), group_column, problems),
    }
    taken = {c for c in cols.values() if c}
    listing = fmt_names(available)
    if text_column is None:
        pairs = [p for p in PAIR_NAMES if len(_lookup(available, p, taken)) == 2]
        if text_pair_column is None and len(pairs) == 1:
            cols["text"], cols["pair"] = _lookup(available, pairs[0], taken)
        elif text_pair_column is None and len(pairs) > 1:
            found = " and ".join(f"{shown(a)}/{shown(b)}" for a, b in pairs)
            problems.append(
                f"ambiguous text columns: {found} all look like text pairs; pass {flag('text_column')}"
            )
        else:
            found = _lookup(available, TEXT_NAMES, taken)
            if len(found) == 1:
                cols["text"] = found[0]
            elif not found:
                problems.append(
                    f"no text column found (looked for {', '.join(TEXT_NAMES)}); pass {flag('text_column')}; "
                    f"available columns: {listing}"
                )
            else:
                problems.append(
                    f"ambiguous text column: {fmt_names(found)} all look like text; "
                    f"pass {flag('text_column')}"
                )
        taken |= {c for c in (cols["text"], cols["pair"]) if c}
    if label_column is None:
        found = _lookup(available, LABEL_NAMES, taken)
        if len(found) == 1:
            cols["label"] = found[0]
        elif not found:
            problems.append(
                f"no label column found (looked for {', '.join(LABEL_NAMES)}); pass {flag('label_column')}; "
                f"available columns: {listing}"
            )
        else:
            problems.append(
                f"ambiguous label column: {fmt_names(found)} all look like labels; "
                f"pass {flag('label_column')}"
            )
        taken |= {cols["label"]} if cols["label"] else set()
    if split_column is None and detect_split:
        found = _lookup(available, SPLIT_NAMES, taken)
        cols["split"] = found[0] if found else None
    used = [c for c in cols.values() if c]
    repeated = sorted({c for c in used if used.count(c) > 1})
    if repeated:
        problems.append(
            f"column {shown(repeated[0])} is given more than one role; each role needs its own column"
        )
    if not cols["text"] or not cols["label"] or problems:
        return None, problems
    return Columns(cols["text"], cols["label"], cols["pair"], cols["split"], cols["group"]), problems
