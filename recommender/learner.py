"""The meta-learner: predicts the distillation ratio of a KD pipeline on a dataset, and ranks.

A gradient-boosted tree ensemble (scikit-learn ``HistGradientBoostingRegressor``, which handles
missing features natively) maps ``[dataset meta-features | teacher/student numbers | config]`` to
the ratio (student score / teacher score). Quantile models of the same family give the interval.
Each dataset's runs share a total sample weight of 1, so heavily swept datasets do not dominate.

With ``target="relative"`` the main model learns ``ratio - mean ratio of its (dataset, teacher,
student) group``, which isolates the pipeline effect that decides the ranking inside a group; a
second model predicts the group mean from the context alone, and the two add up to a ratio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from models.availability import Availability
from models.config import KDConfig, ModelDescriptor, TaskKind
from recommender.compiled import LeafEnsemble, PartialEnsemble
from recommender.explain import CandidateTable, explanation
from recommender.features import FeatureSpace, meta_feature_names, nan_distances, standardize_fit
from recommender.records import SweepRecord
from recommender.space import PAPER_GRID, SearchGrid, candidate_space

TARGETS = ("ratio", "relative")


@dataclass(frozen=True)
class Recommendation:
    """One ranked pipeline: predicted ratio, an interval around it, and why it was chosen."""

    kd_config: KDConfig
    predicted_ratio: float
    interval: tuple[float, float]
    explanation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kd_config": self.kd_config.model_dump(mode="json"),
            "predicted_ratio": self.predicted_ratio,
            "interval": list(self.interval),
            "explanation": self.explanation,
        }


def validate_records(records: Any, name: str = "records", *, need_ratio: bool = True) -> list[SweepRecord]:
    """A non-empty list of records with a KD config (and a ratio when training); clear errors."""
    if isinstance(records, str | bytes) or not hasattr(records, "__iter__"):
        raise TypeError(f"{name} must be a sequence of SweepRecord, got {type(records).__name__}")
    records = list(records)
    if not records:
        raise ValueError(f"{name} is empty")
    for i, r in enumerate(records):
        if not isinstance(r, SweepRecord):
            raise TypeError(f"{name}[{i}] is a {type(r).__name__}, not a SweepRecord")
        if r.kd_config is None:
            raise ValueError(f"{name}[{i}] (run {r.run_id}) has no kd_config")
        if need_ratio and (r.ratio is None or not np.isfinite(r.ratio)):
            raise ValueError(f"{name}[{i}] (run {r.run_id}) has no finite ratio")
    return records


def dataset_weights(records: Sequence[SweepRecord]) -> np.ndarray:
    """1 / (number of runs of the record's dataset): every dataset weighs 1 in total."""
    ids = [r.dataset_id for r in records]
    counts: dict[str, int] = {}
    for d in ids:
        counts[d] = counts.get(d, 0) + 1
    return np.array([1.0 / counts[d] for d in ids])


def dataset_table(space: FeatureSpace, records: Sequence[SweepRecord]) -> tuple[list[str], np.ndarray]:
    """One meta-feature row per dataset (NaN-mean over its records), in first-seen order."""
    rows: dict[str, list[np.ndarray]] = {}
    for r in records:
        rows.setdefault(r.dataset_id, []).append(space.dataset_vector(r.meta_features))
    ids = list(rows)
    if not space.meta_names:
        return ids, np.empty((len(ids), 0))
    table = np.array([_nanmean_rows(np.array(v)) for v in rows.values()])
    return ids, table


def _nanmean_rows(block: np.ndarray) -> np.ndarray:
    known = ~np.isnan(block)
    total = np.where(known, block, 0.0).sum(axis=0)
    count = known.sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


class MetaLearner(RegressorMixin, BaseEstimator):
    """Predicts the KD ratio of (dataset, teacher, student, pipeline) and recommends pipelines.

    Args:
        target: ``"ratio"`` (predict the ratio directly) or ``"relative"`` (predict the offset
            from the group mean, plus a group-mean model).
        max_iter: Boosting iterations of each tree ensemble.
        learning_rate: Boosting learning rate.
        max_leaf_nodes: Leaves per tree.
        min_samples_leaf: Minimum samples per leaf.
        group_min_samples_leaf: Minimum groups per leaf of the group-mean model (``relative``),
            which sees one row per (dataset, teacher, student) group, far fewer than runs.
        l2_regularization: L2 penalty on leaf values.
        quantiles: Lower and upper quantile of the interval.
        weighting: ``"dataset"`` (each dataset weighs 1) or ``"none"``.
        exclude_prefixes: Meta-feature name prefixes to leave out (e.g. ``("paper_feat_",)``).
        n_neighbors: Nearest past datasets listed in explanations.
        base_config: Base of generated candidates (training settings, weights, asset folders).
        availability: Availability report for candidates; None asks the engine.
        grid: The candidate search grid.
        random_state: Seed of the tree ensembles.
    """

    def __init__(
        self,
        target: str = "relative",
        max_iter: int = 200,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 4,
        min_samples_leaf: int = 20,
        group_min_samples_leaf: int = 3,
        l2_regularization: float = 1.0,
        quantiles: tuple[float, float] = (0.1, 0.9),
        weighting: str = "dataset",
        exclude_prefixes: tuple[str, ...] = (),
        n_neighbors: int = 3,
        base_config: KDConfig | None = None,
        availability: Mapping[str, Availability] | None = None,
        grid: SearchGrid = PAPER_GRID,
        random_state: int = 0,
    ) -> None:
        self.target = target
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.group_min_samples_leaf = group_min_samples_leaf
        self.l2_regularization = l2_regularization
        self.quantiles = quantiles
        self.weighting = weighting
        self.exclude_prefixes = exclude_prefixes
        self.n_neighbors = n_neighbors
        self.base_config = base_config
        self.availability = availability
        self.grid = grid
        self.random_state = random_state

    def set_params(self, **params: Any) -> MetaLearner:
        """Set hyper-parameters; cached candidate tables are dropped (they depend on
        ``availability``, ``base_config`` and ``grid``)."""
        super().set_params(**params)
        self.__dict__.get("_cache", {}).clear()
        return self

    # ----------------------------------------------------------------------------- fitting
    def _check_params(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.weighting not in ("dataset", "none"):
            raise ValueError(f"weighting must be 'dataset' or 'none', got {self.weighting!r}")
        lo, hi = self.quantiles
        if not 0.0 < lo < hi < 1.0:
            raise ValueError(f"quantiles must satisfy 0 < lower < upper < 1, got {self.quantiles}")
        if self.group_min_samples_leaf < 1:
            raise ValueError(f"group_min_samples_leaf must be >= 1, got {self.group_min_samples_leaf}")
        if self.n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors}")

    def _ensemble(self, **overrides: Any) -> HistGradientBoostingRegressor:
        params = dict(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=self.random_state,
        )
        return HistGradientBoostingRegressor(**{**params, **overrides})

    def fit(self, records: Sequence[SweepRecord], y: None = None) -> MetaLearner:
        """Fit on sweep records (``y`` is unused: the target is each record's ratio).

        Raises:
            ValueError: Bad hyper-parameters, empty records, or records without ratio/config.
        """
        self._check_params()
        records = validate_records(records)
        self.feature_space_ = FeatureSpace(
            meta_feature_names((r.meta_features for r in records), self.exclude_prefixes)
        )
        self.feature_names_in_ = np.array(self.feature_space_.names, dtype=object)
        self.n_features_in_ = len(self.feature_space_.names)
        X = _constant_if_unknown(self.feature_space_.matrix(records))
        ratio = np.array([r.ratio for r in records])
        weight = dataset_weights(records) if self.weighting == "dataset" else np.ones(len(records))
        target = ratio
        if self.target == "relative":
            target, self.group_model_ = self._fit_group_means(records, X, ratio, weight)
        self.model_ = self._ensemble().fit(X, target, sample_weight=weight)
        lo, hi = self.quantiles
        self.lower_ = self._ensemble(loss="quantile", quantile=lo).fit(X, target, sample_weight=weight)
        self.upper_ = self._ensemble(loss="quantile", quantile=hi).fit(X, target, sample_weight=weight)
        self.dataset_ids_, table = dataset_table(self.feature_space_, records)
        self.dataset_mean_, self.dataset_scale_ = standardize_fit(table)
        self.dataset_matrix_ = (table - self.dataset_mean_) / self.dataset_scale_
        self.n_records_ = len(records)
        self._cache = {}  # derived from the fitted models: rebuilt lazily after every fit
        return self

    def _fit_group_means(
        self, records: Sequence[SweepRecord], X: np.ndarray, ratio: np.ndarray, weight: np.ndarray
    ) -> tuple[np.ndarray, HistGradientBoostingRegressor]:
        keys = [r.group_key for r in records]
        index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        gid = np.array([index[k] for k in keys])
        sums = np.bincount(gid, weights=ratio * weight)
        norm = np.bincount(gid, weights=weight)
        means = sums / norm  # (n_groups,)
        first = np.array([np.flatnonzero(gid == g)[0] for g in range(len(means))])
        ctx = X[first, : self.feature_space_.n_context]
        group_model = self._ensemble(min_samples_leaf=self.group_min_samples_leaf).fit(
            ctx, means, sample_weight=norm
        )
        return ratio - means[gid], group_model

    # ----------------------------------------------------------------------------- predicting
    def _predict_matrix(self, X: np.ndarray, model: HistGradientBoostingRegressor) -> np.ndarray:
        out = model.predict(X)
        if self.target == "relative":
            out = out + self.group_model_.predict(X[:, : self.feature_space_.n_context])
        return out

    def predict(self, records: Sequence[SweepRecord]) -> np.ndarray:
        """The predicted ratio of each record, in order (ratios of the records are not used)."""
        check_is_fitted(self, "model_")
        records = validate_records(records, need_ratio=False)
        return self._predict_matrix(self.feature_space_.matrix(records), self.model_)

    def nearest_datasets(
        self, meta_features: Mapping[str, float | None], n: int | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` training datasets closest in standardized meta-feature space."""
        check_is_fitted(self, "model_")
        if self.dataset_matrix_.shape[1] == 0:
            return []
        query = (self.feature_space_.dataset_vector(meta_features) - self.dataset_mean_) / self.dataset_scale_
        dist = nan_distances(query, self.dataset_matrix_)
        order = np.argsort(dist, kind="stable")[: n or self.n_neighbors]
        return [(self.dataset_ids_[i], float(dist[i])) for i in order if np.isfinite(dist[i])]

    def _leaf_models(self) -> dict[str, LeafEnsemble]:
        """The fitted ensembles rewritten for fast exact prediction (built once per fit)."""
        cache = self.__dict__.setdefault("_cache", {})
        if "leaf_models" not in cache:
            names = ["model_", "lower_", "upper_"] + (["group_model_"] if self.target == "relative" else [])
            cache["leaf_models"] = {n: LeafEnsemble.from_model(getattr(self, n)) for n in names}
        return cache["leaf_models"]

    def _prepare(self, table: CandidateTable) -> PartialEnsemble:
        return self._leaf_models()["model_"].partial(table.matrix, self.feature_space_.n_context)

    def candidate_table(
        self, teacher: ModelDescriptor, student: ModelDescriptor, task_kind: TaskKind
    ) -> tuple[CandidateTable, PartialEnsemble]:
        """The candidates of (teacher, student, task kind) with the main model's config splits
        decided, built once per fitted learner."""
        check_is_fitted(self, "model_")
        cache = self.__dict__.setdefault("_cache", {})
        key = ("candidates", teacher, student, task_kind)
        if key not in cache:
            configs = candidate_space(
                task_kind,
                teacher=teacher,
                student=student,
                base_config=self.base_config,
                availability=self.availability,
                grid=self.grid,
            )
            if not configs:
                raise ValueError(
                    f"no runnable candidate pipeline for a {task_kind} task with teacher "
                    f"{teacher.name!r} and student {student.name!r}"
                )
            table = CandidateTable.build(configs)
            cache[key] = (table, self._prepare(table))
        return cache[key]

    def recommend(
        self,
        meta_features: Mapping[str, float | None],
        teacher: ModelDescriptor,
        student: ModelDescriptor,
        k: int = 5,
        candidates: Sequence[KDConfig] | None = None,
        task_kind: TaskKind | None = None,
    ) -> list[Recommendation]:
        """The top-``k`` pipelines for a dataset, best first.

        Args:
            meta_features: The dataset's meta-features (missing ones may be absent or None).
            teacher: Teacher descriptor (names need not have been seen in training).
            student: Student descriptor.
            k: How many to return.
            candidates: Pipelines to rank; None ranks the runnable candidate space.
            task_kind: ``classification``/``regression``; None reads ``is_regression``.

        Raises:
            ValueError: ``k < 1``, unknown task kind, or no candidates.
        """
        check_is_fitted(self, "model_")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        task_kind = task_kind or _task_kind(meta_features)
        if candidates is None:
            table, partial = self.candidate_table(teacher, student, task_kind)
        else:
            if not candidates:
                raise ValueError("candidates is empty")
            table = CandidateTable.build(list(candidates))
            partial = self._prepare(table)
        models = self._leaf_models()
        ctx = self.feature_space_.context_vector(meta_features, teacher, student)
        offset = float(models["group_model_"].predict(ctx)[0]) if self.target == "relative" else 0.0
        pred = partial.predict(ctx) + offset  # (n_candidates,)
        top = _top(pred, k)
        X_top = np.hstack([np.broadcast_to(ctx, (top.size, ctx.size)), table.matrix[top]])
        lower = models["lower_"].predict(X_top) + offset
        upper = models["upper_"].predict(X_top) + offset
        neighbours = self.nearest_datasets(meta_features)
        out = []
        all_effects = table.component_effects(pred, top.tolist())
        for rank, (i, lo, hi, effects) in enumerate(zip(top, lower, upper, all_effects, strict=True), 1):
            p = float(pred[i])
            # Separately fitted quantile models can cross the point prediction; widen to include it.
            interval = (min(float(lo), p), max(float(hi), p))
            out.append(
                Recommendation(
                    table.configs[i], p, interval, explanation(rank, p, interval, neighbours, effects)
                )
            )
        return out


def _top(pred: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest predictions, best first, ties in index order (as a stable sort
    of all of them would give), without sorting all of them."""
    if k >= pred.size:
        return np.argsort(-pred, kind="stable")
    kth = np.partition(pred, pred.size - k)[pred.size - k]  # the k-th largest value
    contenders = np.flatnonzero(pred >= kth)  # every candidate that can make the top k, in order
    return contenders[np.argsort(-pred[contenders], kind="stable")[:k]]


def _constant_if_unknown(X: np.ndarray) -> np.ndarray:
    """Set columns that are NaN in every row to 0.

    A column never known cannot be split on anyway, and scikit-learn's weighted binning fails on
    all-NaN columns; a constant column is ignored by the trees whatever a later row holds there.
    """
    unknown = np.isnan(X).all(axis=0)
    if unknown.any():
        X = X.copy()
        X[:, unknown] = 0.0
    return X


def _task_kind(meta_features: Mapping[str, float | None]) -> TaskKind:
    flag = meta_features.get("is_regression")
    if flag is None:
        raise ValueError("task_kind is needed: meta_features has no 'is_regression'")
    return "regression" if flag else "classification"
