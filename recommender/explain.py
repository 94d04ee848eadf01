"""Precomputed candidate tables and the explanation attached to each recommendation.

The components that "drove the choice" of a pipeline are measured against its alternatives in
the candidate grid: for each component (intermediate loss, KD loss, mixup, augmentation, weights),
the effect is the pipeline's predicted ratio minus the mean prediction of the candidates that
differ from it in that component only. Positive means the chosen option beats the alternatives.
The best of those alternatives is reported too ("what the alternatives would give"), and the
nearest past datasets by name, with a similarity in [0, 1] and what worked there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.config import KDConfig, ModelDescriptor
from recommender.features import CONFIG_COMPONENTS, CONFIG_FEATURES, config_vector
from recommender.tasks import display_name

_TOP_FEATURES = 5


def describe(config: KDConfig, component: str) -> str:
    """A short ``component=value`` label of one pipeline component."""
    inter, aug = config.intermediate, config.augmentation
    if component == "intermediate":
        if inter.loss == "none":
            return "intermediate=none"
        alpha = f"(alpha={inter.alpha:g})" if inter.alpha is not None else ""
        return f"intermediate={inter.loss}{alpha},{inter.strategy}"
    if component == "prediction":
        return f"kd={config.prediction.loss},T={config.prediction.temperature:g}"
    if component == "mixup":
        return f"mixup={'on' if config.mixup.enabled else 'off'}"
    if component == "augmentation":
        if not aug.pipeline:
            return "augmentation=none"
        rep = f",x{aug.repeated_aug}" if aug.repeated_aug > 1 else ""
        return f"augmentation={'>'.join(aug.pipeline)},p={aug.aug_p:g}{rep}"
    if component == "weights":
        w = config.weights
        return f"weights=kd:{w.kd:g},inter:{w.intermediate:g},hard:{w.hard:g}"
    raise ValueError(f"unknown component {component!r}; known: {', '.join(CONFIG_COMPONENTS)}")


def in_words(config: KDConfig, component: str) -> str:
    """One pipeline component in plain words (``MI intermediate loss (alpha 0.5, skip layers)``)."""
    inter, aug = config.intermediate, config.augmentation
    if component == "intermediate":
        if inter.loss == "none":
            return "no intermediate-layer loss"
        alpha = f"alpha {inter.alpha:g}, " if inter.alpha is not None else ""
        return f"{inter.loss.upper()} intermediate-layer loss ({alpha}{inter.strategy} layer mapping)"
    if component == "prediction":
        pred = config.prediction
        return f"{pred.loss.upper()} loss on the teacher's outputs at temperature {pred.temperature:g}"
    if component == "mixup":
        return "mixup" if config.mixup.enabled else "no mixup"
    if component == "augmentation":
        if not aug.pipeline:
            return "no data augmentation"
        rep = f", {aug.repeated_aug} copies" if aug.repeated_aug > 1 else ""
        return f"{' then '.join(aug.pipeline)} augmentation (p {aug.aug_p:g}{rep})"
    if component == "weights":
        w = config.weights
        return f"loss weights kd {w.kd:g} / intermediate {w.intermediate:g} / hard labels {w.hard:g}"
    raise ValueError(f"unknown component {component!r}; known: {', '.join(CONFIG_COMPONENTS)}")


@dataclass(frozen=True)
class CandidateTable:
    """Candidates with their config features and, per component, "same except this" group ids."""

    configs: list[KDConfig]
    matrix: np.ndarray  # (n_candidates, n_config_features)
    groups: dict[str, np.ndarray]  # component -> (n_candidates,) group id
    group_sizes: dict[str, np.ndarray]  # component -> (n_groups,) candidates per group
    # (n_components + 1, n_candidates): the id of each candidate's value of each component, and
    # last the candidate's own index (the portfolio's shared and own error terms)
    value_codes: np.ndarray
    # per component: candidates sorted by value code, and where each value's run starts
    value_order: list[np.ndarray]
    value_starts: list[np.ndarray]
    value_segment: list[np.ndarray]  # the value's run index at each sorted position
    # per component: candidates sorted by "same except this" group, and where each group starts
    group_order: dict[str, np.ndarray]
    group_starts: dict[str, np.ndarray]

    def members(self, component: str, group: int) -> np.ndarray:
        """The candidates of one "same except this component" group."""
        starts = self.group_starts[component]
        return self.group_order[component][starts[group] : starts[group + 1]]

    @classmethod
    def build(cls, configs: list[KDConfig]) -> CandidateTable:
        matrix = np.array([config_vector(c) for c in configs]).reshape(len(configs), len(CONFIG_FEATURES))
        filled = np.where(np.isnan(matrix), -1.0, matrix)  # np.unique would keep NaNs apart
        groups, codes = {}, []
        for component, cols in CONFIG_COMPONENTS.items():
            rest = np.delete(filled, cols, axis=1)
            _, gid = np.unique(rest, axis=0, return_inverse=True)
            groups[component] = gid.reshape(-1)
            _, vid = np.unique(filled[:, cols], axis=0, return_inverse=True)
            codes.append(vid.reshape(-1))
        codes.append(np.arange(len(configs)))
        sizes = {component: np.bincount(gid) for component, gid in groups.items()}
        value_order = [np.argsort(c, kind="stable") for c in codes[:-1]]
        value_starts = [
            np.flatnonzero(np.r_[True, np.diff(c[o]) != 0])
            for c, o in zip(codes[:-1], value_order, strict=True)
        ]
        value_segment = [np.cumsum(np.isin(np.arange(len(configs)), st)) - 1 for st in value_starts]
        group_order = {c: np.argsort(gid, kind="stable") for c, gid in groups.items()}
        group_starts = {c: np.r_[0, np.cumsum(n)] for c, n in sizes.items()}
        return cls(
            configs,
            matrix,
            groups,
            sizes,
            np.array(codes, dtype=np.intp),
            value_order,
            value_starts,
            value_segment,
            group_order,
            group_starts,
        )


@dataclass(frozen=True)
class DatasetEvidence:
    """What worked on each training dataset, per student: plain rows, stored with the model.

    Each row: ``[dataset_id, student_name, student_layers, best_pipeline_words, best_ratio,
    mean_ratio]``.
    """

    rows: list[list[Any]]

    @classmethod
    def from_records(cls, records: Sequence[Any], dataset_ids: Sequence[str]) -> DatasetEvidence:
        best: dict[tuple[str, str], Any] = {}
        ratios: dict[tuple[str, str], list[float]] = {}
        for r in records:
            key = (r.dataset_id, r.student.name)
            ratios.setdefault(key, []).append(float(r.ratio))
            if key not in best or r.ratio > best[key].ratio:
                best[key] = r
        rows = []
        for d in dataset_ids:
            for (dataset, student), r in best.items():
                if dataset == d:
                    label = "; ".join(
                        in_words(r.kd_config, c)
                        for c in ("intermediate", "prediction", "mixup", "augmentation")
                    )
                    layers = -1 if r.student.num_layers is None else int(r.student.num_layers)
                    rows.append(
                        [d, student, layers, label, float(r.ratio), float(np.mean(ratios[(d, student)]))]
                    )
        return cls(rows)


def similarity(distance: float, scale: float) -> float:
    """A similarity in [0, 1] from a meta-feature distance: 1 for the same features, 0.5 at the
    median distance between two past datasets (``scale``), halving with every further ``scale``."""
    return float(0.5 ** (distance / scale)) if scale > 0 else float(distance == 0)


def nearest_evidence(
    evidence: DatasetEvidence,
    neighbours: list[tuple[int, float]],
    dataset_ids: Sequence[str],
    student: ModelDescriptor,
    scale: float,
) -> list[dict[str, Any]]:
    """The nearest past datasets by name, with similarity and what worked there (for the same
    student when it was swept there, else one of the same depth, else any)."""
    out = []
    for index, dist in neighbours:
        d = dataset_ids[index]
        rows = [r for r in evidence.rows if r[0] == d]
        same = (
            [r for r in rows if r[1] == student.name]
            or [r for r in rows if r[2] == student.num_layers]
            or rows
        )
        row = max(same, key=lambda r: r[4]) if same else None
        out.append(
            {
                "dataset": display_name(d),
                "similarity": round(similarity(dist, scale), 3),
                "student": row[1] if row else None,
                "best_pipeline": row[3] if row else None,
                "best_ratio": row[4] if row else None,
                "mean_ratio": row[5] if row else None,
            }
        )
    return out


def component_sums(table: CandidateTable, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per component, the sum of predictions of each "same except this component" group."""
    return {c: np.bincount(gid, weights=pred) for c, gid in table.groups.items()}


def drivers_and_alternatives(
    table: CandidateTable, pred: np.ndarray, index: int, sums: dict[str, np.ndarray]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For one candidate: each component's effect against its alternatives (largest first), and
    the best alternative of each component with what it is predicted to give."""
    config, p = table.configs[index], float(pred[index])
    drivers, alternatives = [], []
    for component, gid in table.groups.items():
        g = gid[index]
        n_others = int(table.group_sizes[component][g]) - 1
        if n_others == 0:
            continue
        effect = p - (float(sums[component][g]) - p) / n_others
        words = in_words(config, component)
        drivers.append(
            {
                "component": component,
                "choice": words,
                "effect": round(effect, 5),
                "text": f"{words}: {effect:+.3f} ratio against "
                + ("the alternative" if n_others == 1 else f"its {n_others} alternatives"),
            }
        )
        same = table.members(component, g)
        same = same[same != index]
        best = int(same[np.argmax(pred[same])])
        alternatives.append(
            {
                "component": component,
                "choice": in_words(table.configs[best], component),
                "predicted_ratio": round(float(pred[best]), 5),
                "kd_config_index": best,
            }
        )
    drivers.sort(key=lambda d: -abs(d["effect"]))
    alternatives.sort(key=lambda a: -a["predicted_ratio"])
    return drivers[:_TOP_FEATURES], alternatives


def explanation(
    table: CandidateTable,
    pred: np.ndarray,
    index: int,
    rank: int,
    interval: tuple[float, float],
    neighbours: list[dict[str, Any]],
    expected_best: float,
    coverage: float | None,
    ceiling: float,
    sums: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The explanation of one pick: a text, the nearest datasets, the drivers, the alternatives."""
    p = float(pred[index])
    drivers, alternatives = drivers_and_alternatives(table, pred, index, sums)
    for a in alternatives:
        a.pop("kd_config_index")
    cover = f"{coverage:.0%} interval" if coverage is not None else "interval (not calibrated)"
    parts = [
        f"Pick #{rank}: predicted ratio {p:.3f} of the teacher's score, "
        f"{cover} {interval[0]:.3f}-{interval[1]:.3f}."
    ]
    if rank > 1:
        parts.append(f"Trying picks 1-{rank}, the best is expected at {expected_best:.3f}.")
    if ceiling > 1.0:
        parts.append(f"Similar past datasets had students beating their teacher (up to {ceiling:.3f}).")
    if neighbours:
        parts.append(
            "Most similar past datasets: "
            + "; ".join(
                f"{n['dataset']} (similarity {n['similarity']:.2f}"
                + (
                    f", best there: {n['best_pipeline']} at {n['best_ratio']:.3f})"
                    if n["best_pipeline"]
                    else ")"
                )
                for n in neighbours
            )
            + "."
        )
    else:
        parts.append("No past dataset shares a known meta-feature with this one.")
    if drivers:
        parts.append("What drives it: " + "; ".join(d["text"] for d in drivers[:3]) + ".")
    if alternatives:
        a = alternatives[0]
        parts.append(
            f"Best alternative in one component: {a['choice']} ({a['component']}) "
            f"at {a['predicted_ratio']:.3f}."
        )
    return {  # JSON's shapes: stored and served as is
        "text": " ".join(parts),
        "nearest_datasets": neighbours,
        "drivers": drivers,
        "alternatives": alternatives,
        "top_features": [[d["choice"], d["effect"]] for d in drivers],
    }
