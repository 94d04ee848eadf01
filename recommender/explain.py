"""Precomputed candidate tables and the explanation attached to each recommendation.

The feature that "drove the choice" of a pipeline is measured against its alternatives in the
candidate grid: for each component (intermediate loss, KD loss, mixup, augmentation, weights),
the effect is the pipeline's predicted ratio minus the mean prediction of the candidates that
differ from it in that component only. Positive means the chosen option beats the alternatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.config import KDConfig
from recommender.features import CONFIG_COMPONENTS, CONFIG_FEATURES, config_vector

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


@dataclass(frozen=True)
class CandidateTable:
    """Candidates with their config features and, per component, "same except this" group ids."""

    configs: list[KDConfig]
    matrix: np.ndarray  # (n_candidates, n_config_features)
    groups: dict[str, np.ndarray]  # component -> (n_candidates,) group id
    group_sizes: dict[str, np.ndarray]  # component -> (n_groups,) candidates per group

    @classmethod
    def build(cls, configs: list[KDConfig]) -> CandidateTable:
        matrix = np.array([config_vector(c) for c in configs]).reshape(len(configs), len(CONFIG_FEATURES))
        filled = np.where(np.isnan(matrix), -1.0, matrix)  # np.unique would keep NaNs apart
        groups = {}
        for component, cols in CONFIG_COMPONENTS.items():
            rest = np.delete(filled, cols, axis=1)
            _, gid = np.unique(rest, axis=0, return_inverse=True)
            groups[component] = gid.reshape(-1)
        sizes = {component: np.bincount(gid) for component, gid in groups.items()}
        return cls(configs, matrix, groups, sizes)

    def component_effects(self, pred: np.ndarray, indices: Sequence[int]) -> list[list[tuple[str, float]]]:
        """For each candidate in ``indices``: (label, effect) per component that has alternatives,
        largest effects first (the group sums are taken once for all of them)."""
        sums = {c: np.bincount(gid, weights=pred) for c, gid in self.groups.items()}
        out = []
        for index in indices:
            effects = []
            for component, gid in self.groups.items():
                g = gid[index]
                n_others = int(self.group_sizes[component][g]) - 1
                if n_others == 0:
                    continue
                others_mean = (float(sums[component][g]) - float(pred[index])) / n_others
                effects.append((describe(self.configs[index], component), float(pred[index]) - others_mean))
            effects.sort(key=lambda item: -abs(item[1]))
            out.append(effects[:_TOP_FEATURES])
        return out


def explanation(
    rank: int,
    predicted: float,
    interval: tuple[float, float],
    neighbours: list[tuple[str, float]],
    effects: list[tuple[str, float]],
) -> dict[str, Any]:
    """The explanation dict: nearest past datasets, the components that drove the choice, text."""
    parts = [f"#{rank}: predicted ratio {predicted:.4f} (interval {interval[0]:.4f}-{interval[1]:.4f})."]
    if neighbours:
        parts.append(
            "Closest past datasets: " + ", ".join(f"{d} ({dist:.2f})" for d, dist in neighbours) + "."
        )
    else:
        parts.append("No past dataset shares a known meta-feature with this one.")
    if effects:
        parts.append(
            "Versus alternatives differing in one component: "
            + ", ".join(f"{name} ({value:+.4f})" for name, value in effects)
            + "."
        )
    return {  # JSON's shapes (pairs as lists): stored and served as is
        "nearest_datasets": [[d, dist] for d, dist in neighbours],
        "top_features": [[name, value] for name, value in effects],
        "text": " ".join(parts),
    }
