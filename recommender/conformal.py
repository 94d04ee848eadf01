"""Conformal calibration of the meta-learner's intervals, with datasets as the exchangeable unit.

The point model is refitted with each unit (a source task, or a dataset) held out and predicts the
held-out runs; those residuals are what a new dataset's error looks like. The interval around a
prediction ``p`` is ``[p + q_lo, p + q_hi]`` with ``q_lo, q_hi`` the weighted quantiles of the
residuals at the two tails, each dataset weighing 1 (its runs share the weight), the tail mass
shrunk by ``n / (n + 1)`` for ``n`` datasets (the finite-sample correction of split conformal).
Both offsets are clipped to include 0, so the point lies inside its interval.

The same residuals, centred inside each (dataset, teacher, student) group, measure how wrong the
model is about one pipeline *relative to the others* of its group: the scale of the portfolio's
uncertainty (:mod:`recommender.portfolio`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.records import SweepRecord
from recommender.tasks import record_source_task


@dataclass(frozen=True)
class Calibration:
    """Interval offsets, the within-group error scale, and how many units were held out."""

    lower: float
    upper: float
    pipeline_sigma: float
    n_units: int


def unit_of(record: SweepRecord, unit: str) -> str:
    """The held-out unit of a record: its source task or its dataset."""
    return record_source_task(record) if unit == "source_task" else record.dataset_id


def out_of_fold(template: Any, records: Sequence[SweepRecord], *, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of each record by a clone of ``template`` fitted without the record's unit.

    Returns:
        (predictions, held) where ``held`` marks records predicted out of fold; with fewer than
        two units nothing can be held out, and the in-sample predictions come back unmarked.
    """
    from sklearn.base import clone

    units = np.array([unit_of(r, unit) for r in records])
    names = list(dict.fromkeys(units.tolist()))
    pred = np.zeros(len(records))
    if len(names) < 2:
        return clone(template).fit(records).predict(records), np.zeros(len(records), dtype=bool)
    for name in names:
        test = units == name
        train = [r for r, t in zip(records, test, strict=True) if not t]
        model = clone(template).fit(train)
        pred[test] = model.predict([r for r, t in zip(records, test, strict=True) if t])
    return pred, np.ones(len(records), dtype=bool)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose cumulative weight share reaches ``q`` (0 <= q <= 1)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][min(int(np.searchsorted(cum, q - 1e-12)), values.size - 1)])


def calibrate(
    records: Sequence[SweepRecord],
    ratio: np.ndarray,
    pred: np.ndarray,
    held: np.ndarray,
    *,
    coverage: float,
) -> Calibration:
    """Offsets of the ``coverage`` interval and the within-group error scale (see module doc)."""
    datasets = np.array([r.dataset_id for r in records])
    counts = {d: int((datasets == d).sum()) for d in set(datasets.tolist())}
    weight = np.array([1.0 / counts[d] for d in datasets])
    resid = ratio - pred
    n = len(counts)
    tail = (1.0 - coverage) / 2.0 * n / (n + 1)
    lower = min(0.0, weighted_quantile(resid, weight, tail))
    upper = max(0.0, weighted_quantile(resid, weight, 1.0 - tail))
    groups = np.array([hash(r.group_key) for r in records])
    centred = resid.copy()
    for g in np.unique(groups):
        m = groups == g
        centred[m] -= np.average(resid[m], weights=weight[m])
    sigma = float(np.sqrt(np.average(centred**2, weights=weight)))
    n_units = len({r.dataset_id for r, h in zip(records, held, strict=True) if h}) if held.any() else 0
    return Calibration(lower, upper, sigma, n_units)


def interval_coverage(real: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Fraction of ``real`` values inside their ``[lower, upper]`` interval."""
    return float(np.mean((real >= lower) & (real <= upper)))
