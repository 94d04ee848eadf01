"""The dataset value objects: :class:`Example`, :class:`DatasetReport` and :class:`TextDataset`.

A :class:`TextDataset` is immutable and already validated, deduplicated and split; every layer
(engine, recommender, API) receives this one object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from models.data.splits import quantile_bins, stratified_sample
from models.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd

TaskKind = Literal["classification", "regression"]
Split = Literal["train", "dev"]


@dataclass(frozen=True)
class Example:
    """One labelled example; ``label`` is a class name (classification) or a float (regression)."""

    text: str
    text_pair: str | None
    label: str | float


@dataclass(frozen=True)
class DatasetReport:
    """What loading found and did. Counts refer to the rows as read, before splitting.

    Attributes:
        source: File path or built-in name.
        rows_read: Data rows in the source (malformed ones included).
        rows_kept: Rows in train + dev.
        duplicates_found: Rows whose text (and pair) repeats an earlier row.
        duplicates_dropped: How many of those were dropped (0 with ``drop_duplicates=False``).
        conflicting_duplicates: Distinct texts that occur with more than one label.
        dev_overlap_dropped: Dev rows dropped because the same text is in train.
        encoding: Text encoding used (None for Parquet or in-memory data).
        split_method: How dev was made, e.g. ``stratified (seed 13, 10%)``.
        text_column: Source column of the text, when read from a table.
        text_pair_column: Source column of the second text.
        label_column: Source column of the label.
        warnings: Things worth knowing that did not stop loading.
    """

    source: str = ""
    rows_read: int = 0
    rows_kept: int = 0
    duplicates_found: int = 0
    duplicates_dropped: int = 0
    conflicting_duplicates: int = 0
    dev_overlap_dropped: int = 0
    encoding: str | None = None
    split_method: str = ""
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextDataset:
    """A validated, deduplicated, split text classification or regression dataset.

    Attributes:
        name: Built-in name or file stem; a subsample appends ``@n``.
        task_kind: ``classification`` or ``regression``.
        is_pair: Whether every example has a ``text_pair``.
        label_names: Sorted class names; ``()`` for regression. Label ids index this tuple.
        train: Training examples.
        dev: Held-out examples.
        report: What loading found.
    """

    name: str
    task_kind: TaskKind
    is_pair: bool
    label_names: tuple[str, ...]
    train: tuple[Example, ...] = field(repr=False)
    dev: tuple[Example, ...] = field(repr=False)
    report: DatasetReport = field(default_factory=DatasetReport, repr=False)

    def __post_init__(self) -> None:
        problems = []
        if self.task_kind not in ("classification", "regression"):
            problems.append(f"task_kind must be classification or regression, got {self.task_kind!r}")
        if self.task_kind == "classification" and len(self.label_names) < 2:
            problems.append("classification needs at least 2 label names")
        if self.task_kind == "regression" and self.label_names:
            problems.append("regression datasets have no label names")
        if len(set(self.label_names)) != len(self.label_names):
            problems.append("label names repeat")
        known = set(self.label_names)
        for split in ("train", "dev"):
            for i, ex in enumerate(getattr(self, split), 1):
                if (ex.text_pair is not None) != self.is_pair:
                    problems.append(f"{split} example {i}: text_pair does not match is_pair={self.is_pair}")
                elif self.task_kind == "classification" and ex.label not in known:
                    problems.append(f"{split} example {i}: label {ex.label!r} not in label_names")
                elif self.task_kind == "regression" and not isinstance(ex.label, float):
                    problems.append(f"{split} example {i}: regression label must be a float")
                if len(problems) >= 10:
                    break
        if problems:
            raise DatasetError(f"inconsistent dataset {self.name!r}", problems)

    def __len__(self) -> int:
        return len(self.train) + len(self.dev)

    @property
    def num_labels(self) -> int:
        """Model outputs: the number of classes, or 1 for regression."""
        return len(self.label_names) if self.task_kind == "classification" else 1

    def examples(self, split: Split) -> tuple[Example, ...]:
        """The examples of ``split`` (``train`` or ``dev``)."""
        if split not in ("train", "dev"):
            raise ValueError(f"split must be 'train' or 'dev', got {split!r}")
        return self.train if split == "train" else self.dev

    def label_ids(self, split: Split) -> list[int] | list[float]:
        """Class indices into ``label_names`` (classification) or float targets (regression)."""
        examples = self.examples(split)
        if self.task_kind == "regression":
            return [float(ex.label) for ex in examples]
        index = {name: i for i, name in enumerate(self.label_names)}
        return [index[str(ex.label)] for ex in examples]

    def digest(self) -> str:
        """SHA-256 of the task, label names and every (split, text, pair, label) row, in order."""
        return self._digest

    @cached_property
    def _digest(self) -> str:
        sha = hashlib.sha256()
        sha.update(json.dumps([self.task_kind, self.is_pair, list(self.label_names)]).encode())
        for split in ("train", "dev"):
            for ex in getattr(self, split):
                row = [split, ex.text, ex.text_pair, ex.label]
                sha.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        return sha.hexdigest()

    def subsample(self, n: int, seed: int) -> TextDataset:
        """A stratified subsample of ``n`` train examples (dev unchanged), named ``name@n``.

        Classes keep their proportions (each class keeps at least one example); regression targets
        are stratified by decile. With ``n >= len(train)`` the dataset is returned unchanged.

        Raises:
            DatasetError: ``n`` is below 1 or below the number of classes.
        """
        if n < max(1, len(self.label_names)):
            raise DatasetError(
                f"cannot subsample {self.name!r} to {n} examples: need at least "
                f"{max(1, len(self.label_names))} (one per class)"
            )
        if n >= len(self.train):
            return self
        labels = [ex.label for ex in self.train]
        strata = quantile_bins(labels) if self.task_kind == "regression" else [str(x) for x in labels]
        keys = [f"{ex.text}\x1f{ex.text_pair}\x1f{i}" for i, ex in enumerate(self.train)]
        train = tuple(self.train[i] for i in stratified_sample(strata, keys, n, seed))
        note = f"train subsampled to {n} of {len(self.train)} examples (stratified, seed {seed})"
        report = dataclasses.replace(
            self.report, rows_kept=len(train) + len(self.dev), warnings=(*self.report.warnings, note)
        )
        return dataclasses.replace(self, name=f"{self.name}@{n}", train=train, report=report)

    def to_frame(self, split: Split | Literal["all"] = "train") -> pd.DataFrame:
        """The examples as a DataFrame with columns ``text``, [``text_pair``], ``label``, [``split``]."""
        import pandas as pd  # lazy: pandas is slow to import and most callers never need it

        splits = ("train", "dev") if split == "all" else (split,)
        records = []
        for name in splits:
            for ex in self.examples(name):
                row = {"text": ex.text, "text_pair": ex.text_pair, "label": ex.label, "split": name}
                records.append(row)
        columns = ["text", *(["text_pair"] if self.is_pair else []), "label"]
        columns += ["split"] if split == "all" else []
        return pd.DataFrame.from_records(records, columns=columns)
