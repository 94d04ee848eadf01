"""Parse a label column: find missing labels, decide the task kind, canonicalise class names.

Task kind rule: labels that are all numbers, not all integral, with at least
``REGRESSION_MIN_DISTINCT`` distinct values are a regression target; anything else (strings,
integers, a handful of float levels) is classification. The caller may override it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models.data.problems import OptionStyle, fmt_rows, fmt_values, option

MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "null", "none"})
REGRESSION_MIN_DISTINCT = 10
# Integer labels with this many classes are probably a score the user meant as regression.
MANY_CLASSES = 30
# Class names are stored and returned by the service: keep them short and printable.
MAX_LABEL_CHARS = 200
MAX_CLASSES = 1000
# Regression targets beyond this would overflow squared-error sums and label statistics.
MAX_ABS_TARGET = 1e15


@dataclass
class ParsedLabels:
    """Labels after parsing.

    Attributes:
        task_kind: ``classification`` or ``regression``.
        label_names: Sorted class names (numeric order when all are numbers); ``()`` for regression.
        values: Per row: class name, float, or None where the label is invalid (see ``problems``).
        problems: Errors, with row numbers.
        warnings: Things worth knowing that do not stop loading.
    """

    task_kind: str
    label_names: tuple[str, ...]
    values: list[str | float | None]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_missing(value: Any) -> bool:
    """True for None, NaN and empty or NA-like strings."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def as_number(value: Any) -> float | None:
    """The value as a finite float, or None if it is not a number (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)  # OverflowError for an int beyond float range (10**400)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _bad_name(name: str) -> bool:
    """A class name that is too long or holds control characters (NUL breaks JSON columns)."""
    return len(name) > MAX_LABEL_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in name)


def class_name(value: Any) -> str:
    """Canonical class name: ``1``, ``1.0`` and ``"1"`` are all ``"1"``; strings are stripped."""
    number = as_number(value)
    if number is not None:
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).strip()


def sort_names(names: set[str]) -> tuple[str, ...]:
    """Class names in numeric order when all are numbers (so ``"2"`` precedes ``"10"``), else sorted."""
    numbers = {n: as_number(n) for n in names}
    if all(v is not None for v in numbers.values()):
        return tuple(sorted(names, key=lambda n: (numbers[n], n)))
    return tuple(sorted(names))


class _Memo:
    """Cache a function of hashable label values (unhashable ones, e.g. JSON lists, are not cached)."""

    def __init__(self, func: Any) -> None:
        self.func, self.cache = func, {}

    def __call__(self, value: Any) -> Any:
        key = (type(value), value)  # True == 1 == 1.0 must not share an entry
        try:
            return self.cache[key]
        except KeyError:
            result = self.cache[key] = self.func(value)
            return result
        except TypeError:
            return self.func(value)


def parse_labels(
    values: Sequence[Any],
    rows: Sequence[int],
    task_kind: str | None = None,
    option_style: OptionStyle = "cli",
) -> ParsedLabels:
    """Parse raw label values.

    Args:
        values: Raw labels, one per row.
        rows: The 1-based data row number of each value (for messages).
        task_kind: ``classification``/``regression`` to force, or None to detect.
        option_style: How messages name options (``cli`` flags or ``api`` field names).

    Returns:
        The parsed labels with every problem found.
    """
    problems: list[str] = []
    warnings: list[str] = []
    regression = f"{option('task_kind', option_style)}{' ' if option_style == 'cli' else '='}regression"
    missing = [r for v, r in zip(values, rows, strict=True) if is_missing(v)]
    if missing:
        problems.append(f"missing, NaN or empty label on {fmt_rows(missing)}")
    nested = [r for v, r in zip(values, rows, strict=True) if isinstance(v, list | dict | tuple)]
    if nested:
        problems.append(f"label is a list or object, not a single value, on {fmt_rows(nested)}")
    skip = set(nested)
    present = [(r, v) for v, r in zip(values, rows, strict=True) if not is_missing(v) and r not in skip]
    memo = _Memo(as_number)  # labels repeat: parse each distinct value once
    numbers = [memo(v) for _, v in present]
    numeric = bool(present) and all(n is not None for n in numbers)
    if task_kind is None:
        distinct = len(set(numbers))
        integral = numeric and all(n.is_integer() for n in numbers if n is not None)
        task_kind = (
            "regression"
            if numeric and not integral and distinct >= REGRESSION_MIN_DISTINCT
            else ("classification")
        )
        if numeric and not integral and task_kind == "classification":
            warnings.append(
                f"labels are fractional numbers with only {distinct} distinct values: treated as classes; "
                f"pass {regression} to predict them as numbers"
            )
    if task_kind == "regression":
        return _regression(rows, present, numbers, problems, warnings)
    namer = _Memo(class_name)
    names = [namer(v) for _, v in present]
    bad_names = {r for (r, _), n in zip(present, names, strict=True) if _bad_name(n)}
    if bad_names:
        problems.append(
            f"labels must be at most {MAX_LABEL_CHARS} characters without control characters; "
            f"not so on {fmt_rows(bad_names)}"
        )
        present = [p for p in present if p[0] not in bad_names]
        names = [n for n in names if not _bad_name(n)]
    label_names = sort_names(set(names))
    if present and len(label_names) < 2:
        problems.append(
            f"only one class ({fmt_values(label_names)}) in the label column; classification needs at least 2"
        )
    if len(label_names) > MAX_CLASSES:
        problems.append(
            f"{len(label_names)} distinct labels: classification supports at most {MAX_CLASSES} classes"
            + (f" (if the labels are scores, pass {regression})" if numeric else "")
        )
    elif numeric and len(label_names) >= MANY_CLASSES:
        warnings.append(f"{len(label_names)} numeric classes: if the labels are scores, pass {regression}")
    by_row = dict(zip((r for r, _ in present), names, strict=True))
    parsed: list[str | float | None] = [by_row.get(r) for r in rows]
    return ParsedLabels("classification", label_names, parsed, problems, warnings)


def _regression(
    rows: Sequence[int],
    present: list[tuple[int, Any]],
    numbers: list[float | None],
    problems: list[str],
    warnings: list[str],
) -> ParsedLabels:
    bad = [(r, v) for (r, v), n in zip(present, numbers, strict=True) if n is None]
    if bad:
        problems.append(
            f"regression labels must be finite numbers; not numeric on {fmt_rows(r for r, _ in bad)} "
            f"(values {fmt_values(v for _, v in bad)})"
        )
    huge = [
        r for (r, _), n in zip(present, numbers, strict=True) if n is not None and abs(n) > MAX_ABS_TARGET
    ]
    if huge:
        problems.append(
            f"regression labels must lie within ±{MAX_ABS_TARGET:.0e}; not so on {fmt_rows(huge)}"
        )
    good = {
        r: n for (r, _), n in zip(present, numbers, strict=True) if n is not None and abs(n) <= MAX_ABS_TARGET
    }
    if good and len(set(good.values())) < 2:
        problems.append(f"every regression label equals {next(iter(good.values()))}; nothing to learn")
    parsed: list[str | float | None] = [good.get(r) for r in rows]
    return ParsedLabels("regression", (), parsed, problems, warnings)
