"""Turn a :class:`RawTable` into a :class:`TextDataset`: check rows, parse labels, dedupe, split.

Every check runs and every problem is collected before anything is raised, so one error lists all
that is wrong with the data. Files and built-in datasets go through this same path.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.data.columns import Columns, resolve_columns
from models.data.dataset import DatasetReport, Example, TextDataset
from models.data.labels import parse_labels, sort_names
from models.data.problems import OptionStyle, fmt_rows, fmt_values, option, shown
from models.data.readers import RawTable
from models.data.splits import assign_dev, quantile_bins
from models.errors import DatasetError

MIN_SPLIT_ROWS = 10
MAX_DEV_FRACTION = 0.5
SPLIT_VALUES = {"train": "train", "training": "train", "dev": "dev", "validation": "dev", "valid": "dev"}
SPLIT_VALUES |= {"val": "dev", "test": "test"}


@dataclass(frozen=True)
class LoadOptions:
    """How to read a table; see :func:`models.data.load_dataset` for each option."""

    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    task_kind: str | None = None
    dev_file: str | Path | None = None
    split_column: str | None = None
    dev_fraction: float = 0.1
    group_column: str | None = None
    seed: int = 13
    drop_duplicates: bool = True
    encoding: str | None = None
    max_chars: int | None = 20000
    max_rows: int | None = None
    option_style: OptionStyle = "cli"  # how messages name options: CLI flags or API field names


@dataclass
class _Row:
    row: int
    text: str
    pair: str | None
    raw_label: Any
    group: str | None = None
    split: str | None = None
    label: str | float | None = None
    key: tuple[str, str | None] = field(init=False)

    def __post_init__(self) -> None:
        # Whitespace-insensitive, so a re-wrapped copy of a text still counts as a duplicate.
        self.key = " ".join(self.text.split()), None if self.pair is None else " ".join(self.pair.split())


def _as_text(value: Any) -> str | None | bool:
    """Text, None when missing/empty, False when the value is not text at all (a list, a dict)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    text = str(value).replace("\r\n", "\n").strip()
    return text or None


def _extract(table: RawTable, cols: Columns, opts: LoadOptions) -> tuple[list[_Row], list[str]]:
    """Rows with usable text, and a problem per kind of bad cell (all rows listed)."""
    bad: dict[str, list[int]] = defaultdict(list)
    bad_splits: list[Any] = []
    longest = 0
    rows: list[_Row] = []
    for i, number in enumerate(table.rows):
        text = _as_text(table.data[cols.text][i])
        pair = _as_text(table.data[cols.pair][i]) if cols.pair else ""
        for role, value in (("text", text), ("text_pair", pair)):
            if value is None:
                bad[f"empty or missing {role}"].append(number)
            elif value is False:
                bad[f"{role} is not a string (a list or object)"].append(number)
            elif opts.max_chars and len(value) > opts.max_chars:
                bad[f"{role} longer than {_max_chars(opts)}"].append(number)
                longest = max(longest, len(value))
        group = split = None
        if cols.group:
            value = table.data[cols.group][i]
            group = None if _as_text(value) in (None, False) else str(value).strip()
            if group is None:
                bad[f"missing value in group column {shown(cols.group)}"].append(number)
        if cols.split:
            value = table.data[cols.split][i]
            split = SPLIT_VALUES.get(str(value).strip().lower()) if value is not None else None
            if split is None:
                bad[
                    f"split column {shown(cols.split)} holds a value other than train/dev/validation/test"
                ].append(number)
                bad_splits.append(value)
        if isinstance(text, str) and isinstance(pair, str):
            rows.append(
                _Row(number, text, pair if cols.pair else None, table.data[cols.label][i], group, split)
            )
    problems = []
    raise_it = " or raise max_chars" if opts.option_style == "cli" else ""
    for what, numbers in bad.items():
        too_long = what.startswith(("text longer", "text_pair longer"))
        detail = f" (longest {longest} characters; shorten them{raise_it})" if too_long else ""
        detail = f" (values {fmt_values(bad_splits)})" if "split column" in what else detail
        problems.append(f"{what} on {fmt_rows(numbers)}{detail}")
    return rows, problems


def _max_chars(opts: LoadOptions) -> str:
    return f"max_chars={opts.max_chars}" if opts.option_style == "cli" else f"{opts.max_chars} characters"


def _dedupe(rows: list[_Row], drop: bool) -> tuple[list[_Row], dict[str, int]]:
    """Drop repeated texts, keeping the first (train before dev); count what was found."""
    ordered = sorted(rows, key=lambda r: r.split not in (None, "train"))  # stable: train rows first
    first: dict[tuple[str, str | None], _Row] = {}
    labels: dict[tuple[str, str | None], set[Any]] = defaultdict(set)
    stats = Counter(found=0, dropped=0, overlap=0)
    kept: list[_Row] = []
    for row in ordered:
        labels[row.key].add(row.label)
        seen = first.setdefault(row.key, row)
        if seen is not row:
            stats["found"] += 1
            crosses = seen.split != row.split
            stats["overlap"] += crosses
            if drop:
                stats["dropped"] += 1
                continue
        kept.append(row)
    stats["conflicting"] = sum(len(v) > 1 for v in labels.values())
    return kept, stats


def _dedupe_warnings(stats: Counter[str], drop: bool) -> list[str]:
    warnings = []
    if stats["found"] and not drop:
        warnings.append(f"{stats['found']} duplicate rows kept (drop_duplicates=False)")
    if stats["conflicting"]:
        kept = "the first label was kept" if drop else "every copy was kept"
        warnings.append(f"{stats['conflicting']} texts occur with different labels; {kept}")
    if stats["overlap"] and not drop:
        warnings.append(f"{stats['overlap']} dev rows repeat a train text (leakage)")
    return warnings


def _split(
    rows: list[_Row], kind: str, cols: Columns, opts: LoadOptions, excluded: int, quiet: bool
) -> tuple[str, list[str], list[str]]:
    """Give every row a side (in place); return the method, problems and warnings.

    ``excluded`` counts rows already reported as invalid and ``quiet`` says problems were already
    found: a split that fails only because of those is not reported as a second, derived problem.
    """
    problems: list[str] = []
    warnings: list[str] = []
    if opts.dev_file is not None:
        method = f"dev file {opts.dev_file}"
    elif cols.split:
        method = f"split column {shown(cols.split)}"
        tests = [r for r in rows if r.split == "test"]
        if tests and not any(r.split == "dev" for r in rows):
            for row in tests:
                row.split = "dev"
            warnings.append(f"no dev/validation rows: the {len(tests)} test rows form the dev set")
        elif tests:
            rows[:] = [r for r in rows if r.split != "test"]
            warnings.append(f"{len(tests)} test rows left out (a dev split exists; test stays unseen)")
    else:
        if len(rows) + excluded < MIN_SPLIT_ROWS:
            instead = (
                "pass a dev file / split column"
                if opts.option_style == "cli"
                else f"give {option('split_column', 'api')} (a column of train/dev per row)"
            )
            problems.append(
                f"too few rows for a dev split: {len(rows) + excluded} rows after removing duplicates, "
                f"need at least {MIN_SPLIT_ROWS}; add rows or {instead}"
            )
        if len(rows) < MIN_SPLIT_ROWS:
            return "none", problems, warnings
        labels = [r.label for r in rows]
        strata = quantile_bins(labels) if kind == "regression" else [str(x) for x in labels]  # type: ignore[arg-type]
        groups = [f"g:{r.group}" if cols.group else f"t:{r.key}" for r in rows]
        if cols.group and len(set(groups)) < 2:
            problems.append(
                f"group column {shown(cols.group)} has a single group; a grouped split needs 2 or more"
            )
            return "none", problems, warnings
        keep = kind == "classification"  # a class must not be in dev only; a label decile may
        sides = assign_dev(strata, groups, opts.dev_fraction, opts.seed, keep_strata=keep)
        for row, is_dev in zip(rows, sides, strict=True):
            row.split = "dev" if is_dev else "train"
        how = f"grouped by {shown(cols.group)}, stratified" if cols.group else "stratified"
        how += " by label decile" if kind == "regression" else " by label"
        method = f"{how} (seed {opts.seed}, dev {opts.dev_fraction:.0%})"
    counts = Counter(r.split for r in rows)
    automatic = opts.dev_file is None and not cols.split
    for side in ("train", "dev"):
        if not counts[side] and not quiet:
            single = "lies in a single group" if cols.group else "has a single row"
            why = (
                f": every class {single}, and dev only takes classes that train keeps"
                if automatic and side == "dev" and kind == "classification"
                else ""
            )
            problems.append(
                f"the {side} split is empty ({len(rows)} usable rows){why}; add rows or change the split"
            )
    if kind == "classification" and counts["dev"]:
        absent = sorted({str(r.label) for r in rows} - {str(r.label) for r in rows if r.split == "dev"})
        if absent:
            warnings.append(f"classes absent from dev: {fmt_values(absent)}")
    return method, problems, warnings


def _resolve(table: RawTable, dev: RawTable | None, opts: LoadOptions) -> tuple[Columns | None, list[str]]:
    cols, problems = resolve_columns(
        table.columns,
        text_column=opts.text_column,
        text_pair_column=opts.text_pair_column,
        label_column=opts.label_column,
        split_column=opts.split_column,
        group_column=opts.group_column,
        detect_split=dev is None,
        option_style=opts.option_style,
    )
    if cols and cols.split and cols.group:
        problems.append(
            f"group column {shown(cols.group)} applies to the automatic split, but split column "
            f"{shown(cols.split)} already assigns every row"
        )
    if cols and dev is not None:
        _, dev_problems = resolve_columns(
            dev.columns,
            text_column=cols.text,
            text_pair_column=cols.pair,
            label_column=cols.label,
            option_style=opts.option_style,
        )
        problems += [f"dev file: {p}" for p in dev_problems]
    return cols, problems


def _option_problems(opts: LoadOptions) -> list[str]:
    problems = []
    if opts.task_kind not in (None, "classification", "regression"):
        problems.append(f"task_kind must be 'classification' or 'regression', got {shown(opts.task_kind)}")
    if not 0.0 < opts.dev_fraction <= MAX_DEV_FRACTION:
        problems.append(f"dev_fraction must be in (0, {MAX_DEV_FRACTION}], got {opts.dev_fraction}")
    if opts.dev_file is not None and opts.split_column is not None:
        problems.append("give either a dev file or a split column, not both")
    if opts.dev_file is not None and opts.group_column is not None:
        problems.append("group_column applies to the automatic split; it cannot be used with a dev file")
    return problems


def _labelled_rows(
    table: RawTable, dev: RawTable | None, cols: Columns, opts: LoadOptions
) -> tuple[list[_Row], str, list[str], list[str]]:
    """Rows with valid text and label (train then dev), the task kind, problems and warnings."""
    rows, problems = _extract(table, cols, opts)
    labels = parse_labels(
        [r.raw_label for r in rows], [r.row for r in rows], opts.task_kind, opts.option_style
    )
    problems += labels.problems
    for row, value in zip(rows, labels.values, strict=True):
        row.label = value
    if dev is not None:
        dev_rows, dev_problems = _extract(dev, cols, opts)
        # The dev file follows the train file's task kind: a few dev labels must not flip it.
        dev_labels = parse_labels(
            [r.raw_label for r in dev_rows], [r.row for r in dev_rows], labels.task_kind, opts.option_style
        )
        problems += [f"dev file: {p}" for p in dev_problems + dev_labels.problems]
        for row, value in zip(dev_rows, dev_labels.values, strict=True):
            row.label, row.split = value, "dev"
        for row in rows:
            row.split = "train"
        rows += dev_rows
    return [r for r in rows if r.label is not None], labels.task_kind, problems, list(labels.warnings)


def _class_problems(
    label_names: tuple[str, ...], train: list[_Row], dev: list[_Row], dev_file: bool, quiet: bool
) -> list[str]:
    problems = []
    unseen = [r for r in dev if r.label not in label_names]
    if unseen:
        problems.append(
            f"{'dev file' if dev_file else 'dev rows'} has labels not seen in train: "
            f"{fmt_values(r.label for r in unseen)} on {fmt_rows(r.row for r in unseen)}"
        )
    if train and len(label_names) < 2 and not quiet:
        problems.append(f"train has only one class ({fmt_values(label_names)}); need at least 2")
    return problems


def build_dataset(
    table: RawTable, opts: LoadOptions, *, name: str, dev: RawTable | None = None
) -> TextDataset:
    """Validate, parse labels, dedupe and split a table (plus an optional dev table).

    Args:
        table: The training table (or the whole data, to be split).
        opts: Column names and split/validation options.
        name: Dataset name.
        dev: A separate dev table read with the same columns.

    Returns:
        The dataset.

    Raises:
        DatasetError: Listing every problem found in both tables.
    """
    problems = _option_problems(opts) + list(table.problems)
    problems += [f"dev file: {p}" for p in (dev.problems if dev else [])]
    for which, tab in (("", table), ("dev file: ", dev)):
        if tab is not None and opts.max_rows is not None and tab.rows_read > opts.max_rows:
            problems.append(f"{which}{tab.rows_read} data rows, more than max_rows={opts.max_rows}")
    cols, col_problems = _resolve(table, dev, opts)
    problems += col_problems
    if cols is None or col_problems:
        raise DatasetError(f"cannot load {table.source}", problems)
    rows, kind, row_problems, warnings = _labelled_rows(table, dev, cols, opts)
    problems += row_problems
    kept, stats = _dedupe(rows, opts.drop_duplicates)
    excluded = table.rows_read + (dev.rows_read if dev else 0) - len(rows)
    method, split_problems, split_warnings = _split(kept, kind, cols, opts, excluded, quiet=bool(problems))
    problems += split_problems
    warnings += split_warnings + _dedupe_warnings(stats, opts.drop_duplicates)
    train = [r for r in kept if r.split == "train"]
    dev_rows = [r for r in kept if r.split == "dev"]
    label_names: tuple[str, ...] = ()
    if kind == "classification":
        label_names = sort_names({str(r.label) for r in train})
        problems += _class_problems(label_names, train, dev_rows, dev is not None, quiet=bool(problems))
    if problems:
        raise DatasetError(f"invalid dataset {table.source}", problems)
    report = DatasetReport(
        source=table.source,
        rows_read=table.rows_read + (dev.rows_read if dev else 0),
        rows_kept=len(kept),
        duplicates_found=stats["found"],
        duplicates_dropped=stats["dropped"],
        conflicting_duplicates=stats["conflicting"],
        dev_overlap_dropped=stats["overlap"] if opts.drop_duplicates else 0,
        encoding=table.encoding,
        split_method=method,
        text_column=cols.text,
        text_pair_column=cols.pair,
        label_column=cols.label,
        warnings=tuple(warnings),
    )

    def examples(part: list[_Row]) -> tuple[Example, ...]:
        return tuple(Example(r.text, r.pair, r.label) for r in part)  # type: ignore[arg-type]

    return TextDataset(
        name, kind, cols.pair is not None, label_names, examples(train), examples(dev_rows), report
    )  # type: ignore[arg-type]
