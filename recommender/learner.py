"""The meta-learner: predicts the distillation ratio of a KD pipeline on a dataset, and ranks.

A gradient-boosted tree ensemble (scikit-learn ``HistGradientBoostingRegressor``, which handles
missing features natively) maps ``[dataset meta-features | teacher/student numbers | config]`` to
the ratio (student score / teacher score). Each dataset's runs share a total sample weight of 1, so
heavily swept datasets do not dominate.

Intervals are split-conformal (:mod:`recommender.conformal`): the point model is refitted with
each source task held out, and the held-out residuals, each dataset weighing 1, give the offsets
of the interval; the point always lies inside. The top-k is a portfolio
(:mod:`recommender.portfolio`): picks that maximise the expected best of k under the model's
measured out-of-task error, correlated between pipelines that share components.

With ``target="relative"`` the main model learns ``ratio - mean ratio of its (dataset, teacher,
student) group``, which isolates the pipeline effect that decides the ranking inside a group; a
second model predicts the group mean from the context alone, and the two add up to a ratio.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils.validation import check_is_fitted

from models.availability import Availability
from models.config import KDConfig, ModelDescriptor, TaskKind
from recommender.compiled import LeafEnsemble, PartialEnsemble
from recommender.conformal import calibrate, out_of_fold
from recommender.explain import CandidateTable, DatasetEvidence, component_sums, explanation, nearest_evidence
from recommender.features import (
    CONFIG_COMPONENTS,
    FeatureSpace,
    meta_feature_names,
    nan_distances,
    standardize_fit,
)
from recommender.portfolio import correlated_noise, greedy_portfolio, noise_bank, shortlist, unit_noise
from recommender.records import SweepRecord
from recommender.space import PAPER_GRID, SearchGrid, candidate_space

TARGETS = ("ratio", "relative")
CALIBRATIONS = ("source_task", "dataset", "none")


@dataclass(frozen=True)
class Recommendation:
    """One pick of the portfolio: predicted ratio, its calibrated interval, the expected best
    ratio of the picks up to and including this one, and why it was chosen."""

    kd_config: KDConfig
    predicted_ratio: float
    interval: tuple[float, float]
    explanation: dict[str, Any] = field(default_factory=dict)
    expected_best_of_k: float | None = None
    interval_coverage: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kd_config": self.kd_config.model_dump(mode="json"),
            "predicted_ratio": self.predicted_ratio,
            "interval": list(self.interval),
            "interval_coverage": self.interval_coverage,
            "expected_best_of_k": self.expected_best_of_k,
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
        coverage: Target coverage of the conformal intervals (0.8: 80 % of held-out runs).
        calibration: Unit held out to measure the residuals that calibrate the intervals and the
            portfolio's uncertainty: ``"source_task"``, ``"dataset"`` or ``"none"`` (in-sample
            residuals: not calibrated, used by the calibration refits themselves).
        weighting: ``"dataset"`` (each dataset weighs 1) or ``"none"``.
        exclude_prefixes: Meta-feature name prefixes to leave out (e.g. ``("paper_feat_",)``).
        n_neighbors: Nearest past datasets listed in explanations.
        n_samples: Joint samples of the candidates' ratios that score a portfolio.
        base_config: Base of generated candidates (training settings, weights, asset folders).
        availability: Availability report for candidates; None asks the engine.
        grid: The candidate search grid.
        random_state: Seed of the tree ensembles and of the portfolio's samples.
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
        coverage: float = 0.8,
        calibration: str = "source_task",
        weighting: str = "dataset",
        exclude_prefixes: tuple[str, ...] = (),
        n_neighbors: int = 3,
        n_samples: int = 128,
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
        self.coverage = coverage
        self.calibration = calibration
        self.weighting = weighting
        self.exclude_prefixes = exclude_prefixes
        self.n_neighbors = n_neighbors
        self.n_samples = n_samples
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
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if not 0.0 < self.coverage < 1.0:
            raise ValueError(f"coverage must satisfy 0 < coverage < 1, got {self.coverage}")
        if self.group_min_samples_leaf < 1:
            raise ValueError(f"group_min_samples_leaf must be >= 1, got {self.group_min_samples_leaf}")
        if self.n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors}")
        if self.n_samples < 8:
            raise ValueError(f"n_samples must be >= 8, got {self.n_samples}")

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
        self.dataset_ids_, table = dataset_table(self.feature_space_, records)
        self.dataset_mean_, self.dataset_scale_ = standardize_fit(table)
        self.dataset_matrix_ = (table - self.dataset_mean_) / self.dataset_scale_
        self.distance_scale_ = _median_distance(self.dataset_matrix_)
        self.n_records_ = len(records)
        self._cache = {}  # derived from the fitted models: rebuilt lazily after every fit
        self._calibrate(records, ratio)
        self.dataset_evidence_ = DatasetEvidence.from_records(records, self.dataset_ids_)
        self.dataset_max_ratio_ = np.array(
            [max(r.ratio for r in records if r.dataset_id == d) for d in self.dataset_ids_]
        )
        return self

    def _calibrate(self, records: list[SweepRecord], ratio: np.ndarray) -> None:
        """Interval offsets and the pipeline-level error scale from held-out residuals."""
        if self.calibration == "none":
            pred, held = self.predict(records), np.ones(len(records), dtype=bool)
        else:
            template = clone(self).set_params(calibration="none")
            pred, held = out_of_fold(template, records, unit=self.calibration)
        cal = calibrate(records, ratio, pred, held, coverage=self.coverage)
        self.interval_offsets_ = np.array([cal.lower, cal.upper])
        self.pipeline_sigma_ = float(cal.pipeline_sigma)
        self.calibration_units_ = int(cal.n_units)
        self.calibrated_ = bool(cal.n_units >= 2 and self.calibration != "none")

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

    def predict_interval(self, records: Sequence[SweepRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, lower, upper) per record, clipped to the plausible range of each dataset."""
        point = self.predict(records)
        lower, upper = point + self.interval_offsets_[0], point + self.interval_offsets_[1]
        cache: dict[str, float] = {}
        ceiling = np.array([cache.setdefault(r.dataset_id, self.ceiling(r.meta_features)) for r in records])
        return _clip(point, ceiling), _clip(lower, ceiling), _clip(upper, ceiling)

    def ceiling(self, meta_features: Mapping[str, float | None]) -> float:
        """The highest plausible ratio: 1.0, or more only where the nearest past datasets had
        students that beat their teacher (then their best ratio)."""
        near = self._neighbours(meta_features)
        best = max((float(self.dataset_max_ratio_[i]) for i, _ in near), default=1.0)
        return max(1.0, best)

    def _neighbours(self, meta_features: Mapping[str, float | None]) -> list[tuple[int, float]]:
        if self.dataset_matrix_.shape[1] == 0:
            return []
        query = (self.feature_space_.dataset_vector(meta_features) - self.dataset_mean_) / self.dataset_scale_
        dist = nan_distances(query, self.dataset_matrix_)
        order = np.argsort(dist, kind="stable")[: self.n_neighbors]
        return [(int(i), float(dist[i])) for i in order if np.isfinite(dist[i])]

    def nearest_datasets(
        self, meta_features: Mapping[str, float | None], n: int | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` training datasets closest in standardized meta-feature space (distances)."""
        check_is_fitted(self, "model_")
        if self.dataset_matrix_.shape[1] == 0:
            return []
        query = (self.feature_space_.dataset_vector(meta_features) - self.dataset_mean_) / self.dataset_scale_
        dist = nan_distances(query, self.dataset_matrix_)
        order = np.argsort(dist, kind="stable")[: n or self.n_neighbors]
        return [(self.dataset_ids_[i], float(dist[i])) for i in order if np.isfinite(dist[i])]

    def _noise_bank(self) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", {})
        if "noise_bank" not in cache:
            cache["noise_bank"] = noise_bank(len(CONFIG_COMPONENTS), self.n_samples, self.random_state)
        return cache["noise_bank"]

    def _leaf_models(self) -> dict[str, LeafEnsemble]:
        """The fitted ensembles rewritten for fast exact prediction (built once per fit)."""
        cache = self.__dict__.setdefault("_cache", {})
        if "leaf_models" not in cache:
            names = ["model_"] + (["group_model_"] if self.target == "relative" else [])
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
            # every candidate's unit error draws, gathered once: a call then only scales a slice
            cache[("noise", *key)] = unit_noise(self._noise_bank(), table.value_codes).astype(np.float32)
        return cache[key]

    def recommend(
        self,
        meta_features: Mapping[str, float | None],
        teacher: ModelDescriptor,
        student: ModelDescriptor,
        k: int = 5,
        candidates: Sequence[KDConfig] | None = None,
        task_kind: TaskKind | None = None,
        explain: bool = True,
    ) -> list[Recommendation]:
        """The ``k`` pipelines that together maximise the expected best ratio, in pick order.

        The first pick is the best predicted pipeline; each next one adds the most expected gain
        to the best of those already picked, under the model's measured error, which is shared
        by pipelines that share components: near-copies of a pick add little unless the model is
        confident. Beyond 10 picks, the rest follow in predicted order.

        Args:
            meta_features: The dataset's meta-features (missing ones may be absent or None).
            teacher: Teacher descriptor (names need not have been seen in training).
            student: Student descriptor.
            k: How many to return.
            candidates: Pipelines to rank; None ranks the runnable candidate space.
            task_kind: ``classification``/``regression``; None reads ``is_regression``.
            explain: Attach explanations (the evaluation skips them).

        Raises:
            ValueError: ``k < 1``, unknown task kind, or no candidates.
        """
        check_is_fitted(self, "model_")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        task_kind = task_kind or _task_kind(meta_features)
        if candidates is None:
            table, partial = self.candidate_table(teacher, student, task_kind)
            unit = self._cache[("noise", "candidates", teacher, student, task_kind)]
        else:
            if not candidates:
                raise ValueError("candidates is empty")
            table = CandidateTable.build(list(candidates))
            partial, unit = self._prepare(table), None
        models = self._leaf_models()
        ctx = self.feature_space_.context_vector(meta_features, teacher, student)
        offset = float(models["group_model_"].predict(ctx)[0]) if self.target == "relative" else 0.0
        neighbours = self._neighbours(meta_features)
        ceiling = max(1.0, max((float(self.dataset_max_ratio_[i]) for i, _ in neighbours), default=1.0))
        pred = np.minimum(partial.predict(ctx) + offset, ceiling)  # (n_candidates,)
        short = shortlist(pred, table, k)
        noise = (
            correlated_noise(self._noise_bank(), table, short, self.pipeline_sigma_)
            if unit is None
            else self.pipeline_sigma_ * unit[:, short]
        )
        picks, expected = greedy_portfolio(pred[short], noise, min(k, _PORTFOLIO_MAX, short.size), ceiling)
        order = short[picks]
        if k > order.size:  # the rest in predicted order
            rest = [int(i) for i in _top(pred, min(k, pred.size)) if i not in set(order.tolist())]
            order = np.concatenate([order, np.array(rest[: k - order.size], dtype=np.intp)])
            expected = np.concatenate([expected, np.full(order.size - expected.size, expected[-1])])
        lo_off, hi_off = self.interval_offsets_
        coverage = self.coverage if self.calibrated_ else None
        evidence = (
            nearest_evidence(
                self.dataset_evidence_, neighbours, self.dataset_ids_, student, self.distance_scale_
            )
            if explain
            else []
        )
        sums = component_sums(table, pred) if explain else {}
        out = []
        for rank, i in enumerate(order.tolist(), 1):
            p = float(pred[i])
            interval = (float(max(0.0, min(p + lo_off, p))), float(min(ceiling, max(p + hi_off, p))))
            why = (
                explanation(
                    table,
                    pred,
                    i,
                    rank,
                    interval,
                    evidence,
                    float(expected[rank - 1]),
                    coverage,
                    ceiling,
                    sums,
                )
                if explain
                else {}
            )
            out.append(
                Recommendation(table.configs[i], p, interval, why, float(expected[rank - 1]), coverage)
            )
        return out


_PORTFOLIO_MAX = 10  # picks chosen greedily; later ranks follow the predictions


def _median_distance(matrix: np.ndarray) -> float:
    """Median distance between two training datasets (1.0 when it cannot be measured)."""
    dists = [
        d for i in range(len(matrix)) for d in nan_distances(matrix[i], matrix[i + 1 :]) if np.isfinite(d)
    ]
    scale = float(np.median(dists)) if dists else 1.0
    return scale if scale > 0 else 1.0


def _clip(values: np.ndarray, ceiling: np.ndarray) -> np.ndarray:
    return np.clip(values, 0.0, ceiling)


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
