"""Leave-one-dataset-out and held-out-dataset evaluation of the meta-learner and its baselines.

Inside each (dataset, teacher, student) group the runs of one pipeline are averaged (repeated
seeds), a method picks the pipeline it scores highest, and the quality of the pick is
``picked score / best score in the group``. Random choice is reported as its exact expectation,
the mean of ``score / best`` over the group's pipelines.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from recommender.baselines import FixedDefaultRecommender, NearestDatasetsRecommender
from recommender.learner import MetaLearner, validate_records
from recommender.records import SweepRecord

METHODS = ("meta_learner", "fixed_default", "nearest_datasets")


def _score(r: SweepRecord) -> float:
    return r.student_score if r.student_score is not None else float(r.ratio)


def group_pipelines(records: Sequence[SweepRecord]) -> dict[tuple, dict[str, list[int]]]:
    """group key -> pipeline key -> indices of its runs in ``records`` (insertion order)."""
    out: dict[tuple, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(records):
        out[r.group_key][r.kd_config.pipeline_key()].append(i)
    return out


def pick_quality(real: np.ndarray, predicted: np.ndarray) -> float:
    """``real[argmax predicted] / max real`` (first pipeline wins ties)."""
    return float(real[int(np.argmax(predicted))] / real.max())


def _pipeline_means(values: np.ndarray, runs: dict[str, list[int]]) -> np.ndarray:
    return np.array([values[idx].mean() for idx in runs.values()])


def default_methods(learner: MetaLearner | None = None) -> dict[str, Any]:
    """The estimators compared: the meta-learner and both baselines (unfitted)."""
    return {
        "meta_learner": learner if learner is not None else MetaLearner(),
        "fixed_default": FixedDefaultRecommender(),
        "nearest_datasets": NearestDatasetsRecommender(),
    }


def leave_one_dataset_out(
    records: Sequence[SweepRecord],
    *,
    learner: MetaLearner | None = None,
    min_configs: int = 5,
    methods: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """For each dataset: fit every method on the others, then pick inside each of its groups.

    Args:
        records: The sweep history (at least two datasets).
        learner: Meta-learner template (cloned per fold); default ``MetaLearner()``.
        min_configs: Groups with fewer distinct pipelines are skipped.
        methods: name -> unfitted estimator with ``fit``/``predict``; default
            :func:`default_methods`.
        progress: Called with a line per fold.

    Returns:
        JSON-safe dict: ``groups`` (per group: sizes, best score, each method's pick quality and
        ``random``), ``summary`` (mean pick quality per method over groups), ``skipped``.

    Raises:
        ValueError: Fewer than two datasets, or bad ``min_configs``.
    """
    records = validate_records(records)
    if min_configs < 2:
        raise ValueError(f"min_configs must be >= 2, got {min_configs}")
    datasets = list(dict.fromkeys(r.dataset_id for r in records))
    if len(datasets) < 2:
        raise ValueError(f"leave-one-dataset-out needs at least two datasets, got {datasets}")
    templates = methods if methods is not None else default_methods(learner)
    groups: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for dataset in datasets:
        test = [r for r in records if r.dataset_id == dataset]
        train = [r for r in records if r.dataset_id != dataset]
        fitted = {name: clone(est).fit(train) for name, est in templates.items()}
        preds = {name: est.predict(test) for name, est in fitted.items()}
        real = np.array([_score(r) for r in test])
        for key, runs in group_pipelines(test).items():
            entry = {
                "dataset": key[0],
                "teacher": key[1],
                "student": key[2],
                "n_configs": len(runs),
                "n_runs": sum(len(v) for v in runs.values()),
            }
            scores = _pipeline_means(real, runs)
            if len(runs) < min_configs:
                skipped.append({**entry, "reason": f"fewer than {min_configs} pipelines"})
                continue
            if scores.max() <= 0:
                skipped.append({**entry, "reason": "best score <= 0: the quality fraction is undefined"})
                continue
            entry["best_score"] = float(scores.max())
            for name, pred in preds.items():
                entry[name] = pick_quality(scores, _pipeline_means(pred, runs))
            entry["random"] = float(np.mean(scores / scores.max()))
            groups.append(entry)
        if progress is not None:
            progress(f"fold {dataset}: trained on {len(train)} runs, {len(test)} held out")
    names = [*templates, "random"]
    summary = {name: float(np.mean([g[name] for g in groups])) if groups else None for name in names}
    return {
        "n_records": len(records),
        "n_datasets": len(datasets),
        "min_configs": min_configs,
        "n_groups": len(groups),
        "summary": summary,
        "groups": groups,
        "skipped": skipped,
    }


def heldout_evaluation(
    train: Sequence[SweepRecord],
    test: Sequence[SweepRecord],
    *,
    learner: MetaLearner | None = None,
    k: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """The paper's check: rank a new dataset's tried pipelines; top-k versus k random ones.

    Args:
        train: History to fit on (must not contain the test datasets).
        test: Runs on the held-out dataset(s).
        learner: Meta-learner template; default ``MetaLearner()``.
        k: Pipelines compared per group (groups need more than ``k`` pipelines).
        seed: Seed of the one random draw reported beside the exact random expectation.

    Returns:
        Per group and on average: mean real score of the top-k, the expected mean of k random
        pipelines (= the group mean), one seeded random draw, and the best score.

    Raises:
        ValueError: Overlapping datasets or bad ``k``.
    """
    train, test = validate_records(train, "train"), validate_records(test, "test")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    overlap = {r.dataset_id for r in train} & {r.dataset_id for r in test}
    if overlap:
        raise ValueError(f"train and test share datasets {sorted(overlap)}")
    model = clone(learner if learner is not None else MetaLearner()).fit(train)
    pred, real = model.predict(test), np.array([_score(r) for r in test])
    rng = np.random.default_rng(seed)
    groups, skipped = [], []
    for key, runs in group_pipelines(test).items():
        entry = {"dataset": key[0], "teacher": key[1], "student": key[2], "n_configs": len(runs)}
        if len(runs) <= k:
            skipped.append({**entry, "reason": f"needs more than k={k} pipelines"})
            continue
        scores, p = _pipeline_means(real, runs), _pipeline_means(pred, runs)
        top = np.argsort(-p, kind="stable")[:k]
        draw = rng.choice(len(scores), size=k, replace=False)
        groups.append(
            {
                **entry,
                "top_k_mean": float(scores[top].mean()),
                "random_k_expected": float(scores.mean()),
                "random_k_draw": float(scores[draw].mean()),
                "best_score": float(scores.max()),
            }
        )
    keys = ("top_k_mean", "random_k_expected", "random_k_draw", "best_score")
    summary = {key: float(np.mean([g[key] for g in groups])) if groups else None for key in keys}
    return {
        "k": k,
        "n_train": len(train),
        "n_test": len(test),
        "summary": summary,
        "groups": groups,
        "skipped": skipped,
    }


def plot_evaluation(result: dict[str, Any], path: str | Path) -> Path:
    """Save a PNG: pick quality per group and method (one row per group), mean in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    groups = result["groups"]
    names = [n for n in (*METHODS, "random") if n in result["summary"]] + [
        n for n in result["summary"] if n not in (*METHODS, "random")
    ]
    fig, ax = plt.subplots(figsize=(9, 0.35 * max(len(groups), 4) + 1.5))
    labels = [f"{g['dataset']} | {g['teacher']} -> {g['student']}" for g in groups]
    y = np.arange(len(groups))
    for j, name in enumerate(names):
        mean = result["summary"][name]
        ax.scatter(
            [g[name] for g in groups],
            y + (j - len(names) / 2) * 0.12,
            s=14,
            label=f"{name} (mean {mean:.4f})" if mean is not None else name,
        )
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("picked score / best score in the group")
    ax.set_title(f"Leave-one-dataset-out: {result['n_groups']} groups, {result['n_datasets']} datasets")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
