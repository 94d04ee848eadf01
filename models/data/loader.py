"""Public entry points: :func:`load_dataset` and :func:`validate_file`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from models.data.assemble import LoadOptions, build_dataset
from models.data.builtin import BUILTINS, load_builtin
from models.data.dataset import TextDataset
from models.data.problems import OptionStyle, shown
from models.data.readers import DatasetLimitError, RawTable, file_format, read_table
from models.errors import DatasetError

_SIZED = re.compile(r"^(?P<name>[a-z0-9_]+)@(?P<size>\d{1,9})$")


def builtin_request(source: str | Path) -> tuple[str, int | None] | None:
    """``(name, size)`` when ``source`` names a built-in (``rotten_tomatoes`` or ``rotten_tomatoes@500``).

    Decided from the name alone, never from the file system: a built-in name is no file
    extension away from a data file, and asking whether a file exists would tell a remote caller.
    """
    if not isinstance(source, str):
        return None
    if source in BUILTINS:
        return source, None
    match = _SIZED.match(source)
    if match and match["name"] in BUILTINS:
        return match["name"], int(match["size"])
    return None


def load_builtin_request(source: str, *, seed: int = 13) -> TextDataset:
    """Load a built-in by name (``name`` or ``name@size``); nothing else, whatever files exist.

    Raises:
        DatasetError: ``source`` is not a built-in name (the message lists the known ones).
        AssetMissingError: The built-in's package is not installed.
    """
    request = builtin_request(source)
    if request is None:
        raise DatasetError(
            f"unknown built-in dataset {shown(source)}; known: {', '.join(sorted(BUILTINS))} "
            "(add @N for an N-example train subsample)"
        )
    name, size = request
    return load_builtin(name, size=size, seed=seed)


def _dataset_name(path: Path) -> str:
    fmt_suffixes = len(path.suffixes[-2:]) if file_format(path)[1] else 1
    name = path.name
    for _ in range(fmt_suffixes):
        name = name[: name.rfind(".")] if "." in name else name
    return name or path.name


def _read(path: str | Path, opts: LoadOptions, max_bytes: int | None, problems: list[str]) -> RawTable | None:
    try:
        return read_table(
            path, opts.encoding, max_bytes=max_bytes, max_rows=opts.max_rows, option_style=opts.option_style
        )
    except DatasetLimitError:
        raise  # a size limit is its own error (the service answers 413), not one problem among many
    except DatasetError as err:
        problems.extend(err.problems or [err.message])
        return None


def load_dataset(
    source: str | Path,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    task_kind: str | None = None,
    dev_file: str | Path | None = None,
    split_column: str | None = None,
    dev_fraction: float = 0.1,
    group_column: str | None = None,
    seed: int = 13,
    drop_duplicates: bool = True,
    encoding: str | None = None,
    max_chars: int | None = 20000,
    max_rows: int | None = None,
    max_bytes: int | None = None,
    option_style: OptionStyle = "cli",
) -> TextDataset:
    """Load a built-in dataset or a data file, validated, deduplicated and split.

    Args:
        source: A built-in name (``rotten_tomatoes``, or ``rotten_tomatoes@500`` for a
            500-example train subsample) or a ``.csv``/``.tsv``/``.jsonl``/``.json``/``.parquet`` file.
        text_column: Text column; detected from common names (text, sentence, review, ...) if None.
        text_pair_column: Second text column for pair tasks (detected with pairs like sentence1/2).
        label_column: Label column; detected from common names (label, target, class, ...) if None.
        task_kind: ``classification`` or ``regression``; detected from the labels if None.
        dev_file: A separate dev file with the same columns.
        split_column: Column with train/dev(validation)/test per row; a ``split`` column is used
            automatically when neither this nor ``dev_file`` is given.
        dev_fraction: Dev share of the automatic stratified split.
        group_column: Column whose values never span train and dev (e.g. a movie id).
        seed: Seed of the automatic split (the split does not depend on Python's hash seed).
        drop_duplicates: Drop rows whose text (and pair) repeats an earlier row, keeping the first.
        encoding: Encoding tried when the file is not valid UTF-8.
        max_chars: Longest allowed text (per text column); None for no limit.
        max_rows: Most data rows allowed per file; None for no limit.
        max_bytes: Most bytes a file may hold once decompressed (Parquet: decoded); None for no limit.
        option_style: How messages name options: ``cli`` flags (``--text-column``) or ``api``
            field names (``text_column``).

    Returns:
        The dataset; ``dataset.report`` says what was found (duplicates, warnings, split).

    Raises:
        DatasetError: Listing every problem found, with 1-based data row numbers.
        DatasetLimitError: A file over ``max_bytes`` or ``max_rows``.
        AssetMissingError: A built-in dataset whose package is not installed.
    """
    opts = LoadOptions(
        text_column, text_pair_column, label_column, task_kind, dev_file, split_column, dev_fraction,
        group_column, seed, drop_duplicates, encoding, max_chars, max_rows, option_style,
    )  # fmt: skip
    builtin = builtin_request(source)
    if builtin is not None:
        if opts != LoadOptions(seed=seed, option_style=option_style):
            raise DatasetError(
                f"{source!r} is a built-in dataset; file options (columns, split) do not apply"
            )
        name, size = builtin
        return load_builtin(name, size=size, seed=seed)
    path = Path(source)
    if not path.exists() and not path.suffix:
        raise DatasetError(
            f"{source!r} is neither a file nor a built-in dataset; built-ins: {', '.join(sorted(BUILTINS))}"
        )
    problems: list[str] = []
    table = _read(path, opts, max_bytes, problems)
    dev_problems: list[str] = []
    dev = _read(dev_file, opts, max_bytes, dev_problems) if dev_file is not None else None
    if table is None:
        raise DatasetError(f"cannot load {source}", problems + [f"dev file: {p}" for p in dev_problems])
    if dev_file is not None and dev is None:
        # Still check the training file, so its problems are reported in the same error.
        empty = {c: [] for c in table.columns}
        dev = RawTable(str(dev_file), table.columns, empty, [], problems=dev_problems)
    return build_dataset(table, opts, name=_dataset_name(path), dev=dev)


def validate_file(path: str | Path, **options: Any) -> list[str]:
    """Every problem :func:`load_dataset` would report for a file; ``[]`` when it loads.

    Takes the same keyword options as :func:`load_dataset`. Writes nothing.
    """
    try:
        load_dataset(Path(path), **options)
    except DatasetError as err:
        return err.problems or [err.message]
    return []
