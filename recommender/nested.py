"""Nested leave-one-source-task-out evaluation: the recommender judged on tasks it never saw.

Outer loop: each source task (all size variants and same-text tasks together, see
:mod:`recommender.tasks`) is held out in turn. Inside the training folds only, the learner's
hyper-parameters are chosen by an inner leave-one-source-task-out (a small grid, scored by mean
top-1 pick quality), and the chosen learner is refitted on the whole training fold, where its
conformal intervals are calibrated by its own inner held-out residuals. Every fit goes through
:func:`guarded_fit`, which refuses training data that shares a source task with the reported
fold (:class:`LeakError`), so a planted leak is caught, not reported.

Each held-out (dataset, teacher, student) group is scored on its tried pipelines, seed means
where seeds exist: top-1 (picked / best score), best-of-3 (best of the three picks / best),
regret (best minus picked score, in score points x100), Spearman rank correlation of the method's
scores with the real ones, and, for the meta-learner, the coverage of its intervals over the
held-out runs. Baselines: the fixed default, the fixed portfolio (the k pipelines that together
do best over the training history, auto-sklearn 2.0's idea), nearest datasets, and random (exact
expectations). Each mean has a bootstrap 90 % interval over groups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.base import clone

from recommender.baselines import FixedDefaultRecommender, NearestDatasetsRecommender, fixed_portfolio_order
from recommender.conformal import interval_coverage
from recommender.learner import MetaLearner, validate_records
from recommender.records import SweepRecord
from recommender.tasks import record_source_task

METHODS = ("meta_learner", "fixed_default", "fixed_portfolio", "nearest_datasets", "random")
METRICS = ("top1", "best_of_3", "regret_points", "spearman", "coverage")
# The inner grid: small on purpose (a few fits per fold on 2 cores). Chosen inside training folds.
INNER_GRID: tuple[dict[str, Any], ...] = (
    {"target": "relative", "max_iter": 200, "min_samples_leaf": 20},
    {"target": "relative", "max_iter": 100, "min_samples_leaf": 10},
    {"target": "ratio", "max_iter": 200, "min_samples_leaf": 20},
)
PORTFOLIO_K = 3


class LeakError(RuntimeError):
    """Training data of an evaluation shares a source task (or a run) with the reported fold."""


def tasks_of(records: Sequence[SweepRecord]) -> set[str]:
    return {record_source_task(r) for r in records}


def guarded_fit(estimator: Any, train: Sequence[SweepRecord], forbidden: set[str]) -> Any:
    """``clone(estimator).fit(train)`` after checking no training record's source task is in
    ``forbidden`` (the tasks of the fold being reported).

    Raises:
        LeakError: A training record comes from a forbidden source task.
    """
    leaked = sorted(tasks_of(train) & forbidden)
    if leaked:
        raise LeakError(f"training data contains the held-out source task(s) {leaked}")
    return clone(estimator).fit(list(train))


def source_task_folds(
    records: Sequence[SweepRecord],
) -> list[tuple[str, list[SweepRecord], list[SweepRecord]]]:
    """(task, train, test) per source task, in first-seen order."""
    tasks = list(dict.fromkeys(record_source_task(r) for r in records))
    return [
        (
            t,
            [r for r in records if record_source_task(r) != t],
            [r for r in records if record_source_task(r) == t],
        )
        for t in tasks
    ]


def _score(r: SweepRecord) -> float:
    return r.student_score if r.student_score is not None else float(r.ratio)


def held_out_groups(test: Sequence[SweepRecord]) -> list[dict[str, Any]]:
    """Per (dataset, teacher, student) group: its pipelines (one config each), seed-mean scores
    and ratios, and the runs (for coverage)."""
    by_group: dict[tuple, dict[str, list[SweepRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in test:
        by_group[r.group_key][r.kd_config.pipeline_key()].append(r)
    out = []
    for key, pipelines in by_group.items():
        runs = list(pipelines.values())
        out.append(
            {
                "key": key,
                "records": [rs[0] for rs in runs],  # one representative per pipeline
                "runs": [r for rs in runs for r in rs],
                "scores": np.array([np.mean([_score(r) for r in rs]) for rs in runs]),
                "ratios": np.array([np.mean([r.ratio for r in rs]) for rs in runs]),
                "pipeline_keys": list(pipelines),
            }
        )
    return out


def top1_quality(real: np.ndarray, pred: np.ndarray) -> float:
    """Mean of ``real / best`` over the pipelines tied at the highest prediction (a method that
    cannot tell them apart gets the expectation of picking one of them)."""
    tied = pred >= pred.max() - 1e-12
    return float(real[tied].mean() / real.max())


def random_best_of(real: np.ndarray, k: int) -> float:
    """Exact expectation of ``max of k random pipelines (without replacement) / best``."""
    n = real.size
    if k >= n:
        return 1.0
    s = np.sort(real)
    from math import comb

    probs = np.array([comb(i, k - 1) for i in range(n)]) / comb(n, k)  # P(max is the (i+1)-th)
    return float((probs * s).sum() / s[-1])


def score_order(
    real: np.ndarray, order: Sequence[int], scores: np.ndarray | None, k: int = PORTFOLIO_K
) -> dict[str, float]:
    """Metrics of one method on one group: ``order`` its pick order (first = top-1), ``scores``
    its per-pipeline scores for the rank correlation (None: from the order)."""
    best = real.max()
    ranked = list(order)
    if scores is None:
        scores = np.zeros(real.size)
        scores[ranked] = -np.arange(len(ranked), dtype=float)
    top1 = top1_quality(real, scores) if scores is not None else float(real[ranked[0]] / best)
    rho = spearmanr(scores, real).statistic if np.ptp(scores) > 0 else 0.0
    return {
        "top1": top1,
        "best_of_3": float(real[ranked[:k]].max() / best),
        "regret_points": float(100.0 * (best - real[scores >= scores.max() - 1e-12].mean())),
        "spearman": float(0.0 if np.isnan(rho) else rho),
    }


def select_params(
    learner: MetaLearner,
    train: Sequence[SweepRecord],
    forbidden: set[str],
    grid: Sequence[Mapping[str, Any]] = INNER_GRID,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The grid point with the best mean top-1 over an inner leave-one-source-task-out of
    ``train`` (which must not contain ``forbidden`` tasks); ties go to the first."""
    inner = source_task_folds(train)
    scores: dict[str, float] = {}
    best, best_score = dict(grid[0]), -np.inf
    for point in grid:
        template = clone(learner).set_params(**point, calibration="none")
        qualities = []
        for task, inner_train, inner_test in inner if len(inner) >= 2 else []:
            model = guarded_fit(template, inner_train, forbidden | {task})
            for g in held_out_groups(inner_test):
                if g["scores"].max() <= 0 or len(g["records"]) < 2:
                    continue
                qualities.append(top1_quality(g["scores"], model.predict(g["records"])))
        score = float(np.mean(qualities)) if qualities else 0.0
        scores[str(sorted(point.items()))] = score
        if score > best_score + 1e-12:
            best, best_score = dict(point), score
    return best, scores


def evaluate_fold(
    learner: MetaLearner,
    train: Sequence[SweepRecord],
    test: Sequence[SweepRecord],
    *,
    grid: Sequence[Mapping[str, Any]] = INNER_GRID,
    extra_train: Sequence[SweepRecord] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Select, fit and score every method on one outer fold; returns (fold info, group rows)."""
    forbidden = tasks_of(test)
    train = [*train, *extra_train]
    params, inner = select_params(learner, train, forbidden, grid)
    model = guarded_fit(clone(learner).set_params(**params), train, forbidden)
    fixed = guarded_fit(FixedDefaultRecommender(), train, forbidden)
    nearest = guarded_fit(NearestDatasetsRecommender(), train, forbidden)
    order_keys = fixed_portfolio_order(train, fixed)
    rank_of = {key: i for i, key in enumerate(order_keys)}
    rows = []
    for g in held_out_groups(test):
        real, recs = g["scores"], g["records"]
        if real.max() <= 0 or len(recs) < 2:  # nothing to choose, or no fraction of the best
            continue
        first = recs[0]
        kind = "regression" if first.meta_features.get("is_regression") else "classification"
        pred = model.predict(recs)
        picks = model.recommend(
            dict(first.meta_features), first.teacher, first.student, k=min(PORTFOLIO_K, len(recs)),
            candidates=[r.kd_config for r in recs], task_kind=kind, explain=False,
        )  # fmt: skip
        index = {r.kd_config.pipeline_key(): i for i, r in enumerate(recs)}
        portfolio = [index[p.kd_config.pipeline_key()] for p in picks]
        _, lower, upper = model.predict_interval(g["runs"])
        ratios = np.array([r.ratio for r in g["runs"]])
        fixed_scores = fixed.predict(recs)
        port_rank = np.array([-rank_of.get(k, len(rank_of) + i) for i, k in enumerate(g["pipeline_keys"])])
        near_scores = nearest.predict(recs)
        row = {
            "dataset": g["key"][0],
            "teacher": g["key"][1],
            "student": g["key"][2],
            "source_task": record_source_task(first),
            "n_pipelines": len(recs),
            "n_runs": len(g["runs"]),
            "best_score": float(real.max()),
            "meta_learner": {
                **score_order(real, portfolio, pred),
                "coverage": interval_coverage(ratios, lower, upper),
                "mean_interval_width": float(np.mean(upper - lower)),
            },
            "fixed_default": score_order(real, _order(fixed_scores), fixed_scores),
            "fixed_portfolio": score_order(real, _order(port_rank), port_rank),
            "nearest_datasets": score_order(real, _order(near_scores), near_scores),
            "random": {
                "top1": float(np.mean(real / real.max())),
                "best_of_3": random_best_of(real, PORTFOLIO_K),
                "regret_points": float(100.0 * (real.max() - real.mean())),
                "spearman": 0.0,
            },
            "picks": [g["pipeline_keys"][i] for i in portfolio],
            "picks_distinct_components": _min_pairwise_difference([recs[i].kd_config for i in portfolio]),
        }
        rows.append(row)
    info = {"chosen_params": params, "inner_top1": inner, "n_train": len(train), "n_test": len(test)}
    return info, rows


def _order(scores: np.ndarray) -> list[int]:
    return np.argsort(-scores, kind="stable").tolist()


def _min_pairwise_difference(configs: Sequence[Any]) -> int | None:
    """The fewest pipeline components in which two of the picks differ (None for one pick)."""
    from recommender.explain import describe
    from recommender.features import CONFIG_COMPONENTS

    labels = [[describe(c, comp) for comp in CONFIG_COMPONENTS] for c in configs]
    pairs = [sum(x != y for x, y in zip(a, b, strict=True)) for a, b in combinations(labels, 2)]
    return min(pairs) if pairs else None


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Mean with a 90 % percentile bootstrap interval (resampling the entries)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_boot, values.size))].mean(axis=1)
    return {
        "mean": float(values.mean()),
        "ci90": [float(np.percentile(means, 5)), float(np.percentile(means, 95))],
        "n": int(values.size),
    }


def summarise(rows: Sequence[Mapping[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """Per method and metric: mean over groups with its bootstrap 90 % interval; and the paired
    differences the issue asks about (meta-learner minus fixed default / fixed portfolio)."""
    summary: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        summary[method] = {}
        for metric in METRICS:
            values = [r[method][metric] for r in rows if metric in r[method]]
            if values:
                summary[method][metric] = bootstrap_mean(np.array(values), seed=seed)
    diffs = {}
    for other in ("fixed_default", "fixed_portfolio", "nearest_datasets", "random"):
        for metric in ("top1", "best_of_3"):
            d = np.array([r["meta_learner"][metric] - r[other][metric] for r in rows])
            diffs[f"{metric}: meta_learner - {other}"] = bootstrap_mean(d, seed=seed)
    return {"methods": summary, "differences": diffs}


def nested_evaluation(
    records: Sequence[SweepRecord],
    *,
    learner: MetaLearner | None = None,
    grid: Sequence[Mapping[str, Any]] = INNER_GRID,
    fraction: float = 1.0,
    seed: int = 0,
    extra_train: Sequence[SweepRecord] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Nested leave-one-source-task-out evaluation (see the module docstring).

    Args:
        records: The history (at least two source tasks).
        learner: Learner template; default ``MetaLearner()``.
        grid: Inner hyper-parameter grid.
        fraction: Share of each training group's pipelines kept (the learning curve), drawn
            with ``seed``; the held-out fold is always complete.
        seed: Seed of the subsampling and of the bootstrap.
        extra_train: Records added to every training fold (an imported history), never tested.
        progress: Called with a line per fold.

    Raises:
        ValueError: Fewer than two source tasks, or a bad fraction.
        LeakError: A training fold would contain the held-out task.
    """
    records = validate_records(records)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    folds = source_task_folds(records)
    if len(folds) < 2:
        raise ValueError(f"nested evaluation needs at least two source tasks, got {[f[0] for f in folds]}")
    template = learner if learner is not None else MetaLearner()
    fold_info, rows = [], []
    for task, train, test in folds:
        kept = subsample(train, fraction, seed)
        info, fold_rows = evaluate_fold(template, kept, test, grid=grid, extra_train=extra_train)
        fold_info.append({"held_out": task, "datasets": sorted({r.dataset_id for r in test}), **info})
        rows.extend(fold_rows)
        if progress is not None:
            progress(f"held out {task}: {len(fold_rows)} groups, params {info['chosen_params']}")
    return {
        "fraction": fraction,
        "n_records": len(records),
        "n_extra_train": len(extra_train),
        "source_tasks": [f[0] for f in folds],
        "folds": fold_info,
        "groups": rows,
        **summarise(rows, seed=seed),
    }


def subsample(records: Sequence[SweepRecord], fraction: float, seed: int) -> list[SweepRecord]:
    """Keep ``fraction`` of each group's pipelines (at least two), all runs of a kept pipeline."""
    if fraction >= 1.0:
        return list(records)
    rng = np.random.default_rng(seed)
    by_group: dict[tuple, dict[str, list[SweepRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        by_group[r.group_key][r.kd_config.pipeline_key()].append(r)
    kept: list[SweepRecord] = []
    for pipelines in by_group.values():
        keys = list(pipelines)
        n = max(2, int(round(fraction * len(keys))))
        for i in sorted(rng.choice(len(keys), size=min(n, len(keys)), replace=False)):
            kept.extend(pipelines[keys[i]])
    return kept
