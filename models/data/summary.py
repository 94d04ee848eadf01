"""Describe a dataset in numbers: sizes, label distribution, text lengths (for ``datasets inspect``)."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from models.data.dataset import TextDataset


def _lengths(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "mean": round(statistics.fmean(ordered), 1),
        "median": float(statistics.median(ordered)),
        "p95": float(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]),
        "max": float(ordered[-1]),
    }


def summarize(dataset: TextDataset) -> dict[str, Any]:
    """Sizes, per-split label counts (or target statistics) and word-length statistics.

    Returns:
        A fresh plain dict: ``name``, ``task_kind``, ``is_pair``, ``sizes``, ``labels``,
        ``words`` (text length in words: mean, median, p95, max), ``pair_words`` for pair tasks.
    """
    out: dict[str, Any] = {
        "name": dataset.name,
        "task_kind": dataset.task_kind,
        "is_pair": dataset.is_pair,
        "sizes": {"train": len(dataset.train), "dev": len(dataset.dev)},
    }
    labels: dict[str, Any] = {}
    for split in ("train", "dev"):
        values = [ex.label for ex in dataset.examples(split)]
        if dataset.task_kind == "classification":
            counts = Counter(values)
            labels[split] = {name: counts.get(name, 0) for name in dataset.label_names}
        else:
            labels[split] = {"min": min(values), "max": max(values), **_lengths([])}
            labels[split] |= {"mean": round(statistics.fmean(values), 4)} if values else {}
    out["labels"] = labels
    every = dataset.train + dataset.dev
    out["words"] = _lengths([len(ex.text.split()) for ex in every])
    if dataset.is_pair:
        out["pair_words"] = _lengths([len((ex.text_pair or "").split()) for ex in every])
    return out
