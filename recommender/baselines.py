"""Baselines kept beside the meta-learner: the best fixed default and nearest datasets.

Both score a record by its pipeline (:meth:`KDConfig.pipeline_key`) alone, from how that pipeline
did on training datasets. Ratios are compared as offsets from their (dataset, teacher, student)
group mean, because absolute ratios differ far more between datasets (CoLA vs. MNLI) than
between pipelines; a pipeline tried only on easy datasets would otherwise look best.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from models.config import KDConfig
from recommender.features import FeatureSpace, meta_feature_names, nan_distances, standardize_fit
from recommender.learner import dataset_table, validate_records
from recommender.records import SweepRecord


def relative_ratios(records: Sequence[SweepRecord]) -> dict[str, dict[str, float]]:
    """dataset -> pipeline key -> mean of (ratio - its group's mean ratio)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        groups[r.group_key].append(r.ratio)
    means = {k: float(np.mean(v)) for k, v in groups.items()}
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        acc[r.dataset_id][r.kd_config.pipeline_key()].append(r.ratio - means[r.group_key])
    return {d: {k: float(np.mean(v)) for k, v in by_key.items()} for d, by_key in acc.items()}


class FixedDefaultRecommender(BaseEstimator):
    """Scores every pipeline by its mean relative ratio over the training datasets.

    The mean is shrunk toward 0 (the group average) as ``sum / (n_datasets + smoothing)``, so a
    pipeline tried on one lucky dataset does not beat one that is good everywhere. The top
    pipeline is the fixed default (``default_config_``); unseen pipelines score 0.

    Args:
        smoothing: Pseudo-count of the shrinkage.
    """

    def __init__(self, smoothing: float = 1.0) -> None:
        self.smoothing = smoothing

    def fit(self, records: Sequence[SweepRecord], y: None = None) -> FixedDefaultRecommender:
        if self.smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {self.smoothing}")
        records = validate_records(records)
        per_key: dict[str, list[float]] = defaultdict(list)
        for by_key in relative_ratios(records).values():
            for key, value in by_key.items():
                per_key[key].append(value)
        self.scores_ = {k: sum(v) / (len(v) + self.smoothing) for k, v in per_key.items()}
        configs = {r.kd_config.pipeline_key(): r.kd_config for r in records}
        best = max(sorted(self.scores_), key=self.scores_.__getitem__)
        self.default_config_: KDConfig = configs[best]
        return self

    def predict(self, records: Sequence[SweepRecord]) -> np.ndarray:
        """Each record's pipeline score (higher is better; not a ratio)."""
        check_is_fitted(self, "scores_")
        records = validate_records(records, need_ratio=False)
        return np.array([self.scores_.get(r.kd_config.pipeline_key(), 0.0) for r in records])


class NearestDatasetsRecommender(BaseEstimator):
    """auto-sklearn style: score a pipeline by how it did on the most similar past datasets.

    Datasets are compared by their standardized meta-features (missing ones ignored). A
    pipeline's score is the mean relative ratio over the ``n_neighbors`` closest training datasets
    that tried it; a pipeline never tried scores 0.

    Args:
        n_neighbors: Datasets averaged per pipeline.
        exclude_prefixes: Meta-feature name prefixes to leave out.
    """

    def __init__(self, n_neighbors: int = 3, exclude_prefixes: tuple[str, ...] = ()) -> None:
        self.n_neighbors = n_neighbors
        self.exclude_prefixes = exclude_prefixes

    def fit(self, records: Sequence[SweepRecord], y: None = None) -> NearestDatasetsRecommender:
        if self.n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors}")
        records = validate_records(records)
        self.feature_space_ = FeatureSpace(
            meta_feature_names((r.meta_features for r in records), self.exclude_prefixes)
        )
        self.dataset_ids_, table = dataset_table(self.feature_space_, records)
        self.mean_, self.scale_ = standardize_fit(table)
        self.table_ = (table - self.mean_) / self.scale_
        self.relative_ = relative_ratios(records)
        return self

    def _order(self, meta: dict) -> list[str]:
        if self.table_.shape[1] == 0:
            return list(self.dataset_ids_)
        query = (self.feature_space_.dataset_vector(meta) - self.mean_) / self.scale_
        dist = nan_distances(query, self.table_)
        return [self.dataset_ids_[i] for i in np.argsort(dist, kind="stable")]

    def predict(self, records: Sequence[SweepRecord]) -> np.ndarray:
        """Each record's pipeline score from its nearest datasets (higher is better)."""
        check_is_fitted(self, "relative_")
        records = validate_records(records, need_ratio=False)
        orders: dict[str, list[str]] = {}  # records of one dataset share its neighbours
        out = np.zeros(len(records))
        for i, r in enumerate(records):
            if r.dataset_id not in orders:
                orders[r.dataset_id] = self._order(r.meta_features)
            order = orders[r.dataset_id]
            key = r.kd_config.pipeline_key()
            found = [self.relative_[d][key] for d in order if key in self.relative_[d]][: self.n_neighbors]
            out[i] = float(np.mean(found)) if found else 0.0
        return out


def fixed_portfolio_order(
    records: Sequence[SweepRecord], fixed: FixedDefaultRecommender, *, length: int = 30
) -> list[str]:
    """Pipeline keys in the order of a greedy fixed portfolio over the training history.

    auto-sklearn 2.0's static portfolio: each next pipeline is the one that most raises the mean,
    over the training groups, of the best ``ratio / best ratio of the group`` among the chosen.
    Most pipelines were tried in few groups; where one was not tried its value is imputed from
    the fixed default's score (its shrunk mean offset from the group mean), so an untried group
    neither favours nor sinks it. After ``length`` picks the rest follow the fixed default's
    scores. A held-out group takes the first pipelines of this order that it tried.
    """
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        groups[r.group_key][r.kd_config.pipeline_key()].append(r.ratio)
    keys = sorted(fixed.scores_, key=lambda k: (-fixed.scores_[k], k))
    col = {k: j for j, k in enumerate(keys)}
    fd = np.array([fixed.scores_[k] for k in keys])
    rows = []  # per group: ratio / best ratio of the group, per pipeline
    for pipelines in groups.values():
        means = {k: float(np.mean(v)) for k, v in pipelines.items()}
        best, mean = max(means.values()), float(np.mean(list(means.values())))
        if best <= 0:  # collapsed runs only: no fraction of the best to speak of
            continue
        row = (mean + fd) / best
        for k, m in means.items():
            row[col[k]] = m / best
        rows.append(row)
    value = np.array(rows).reshape(len(rows), len(keys))  # (n_groups, n_pipelines)
    chosen: list[int] = []
    current = np.full(len(rows), -np.inf)
    for _ in range(min(length, len(keys))):
        gain = np.maximum(value, current[:, None]).mean(axis=0)
        gain[chosen] = -np.inf
        j = int(np.argmax(gain))
        chosen.append(j)
        current = np.maximum(current, value[:, j])
    rest = [k for j, k in enumerate(keys) if j not in set(chosen)]
    return [keys[j] for j in chosen] + rest
