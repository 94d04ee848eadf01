"""The candidate space: every runnable KD pipeline the recommender may propose.

Points are enumerated over the paper's search space (spec §2): intermediate loss x strategy x
MI-alpha x prediction-layer KD loss x mixup x augmentation pipeline x aug_p. Each point is
filtered by :func:`models.config.check_compatible` (e.g. regression needs ``mse`` KD; token-level
losses need a shared tokenizer) and by the engine's availability report (e.g. back-translation
needs MarianMT checkpoints). Training settings, loss weights and asset folders come from a base
config, so the candidates differ only in the pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import permutations, product
from typing import Any

from models.availability import Availability, component_availability, runnable
from models.config import PAPER_ALPHAS, STRATEGIES, KDConfig, ModelDescriptor, TaskKind, check_compatible
from models.errors import ConfigError


@dataclass(frozen=True)
class SearchGrid:
    """The options enumerated by :func:`candidate_space` (defaults: the paper's sweep)."""

    intermediate_losses: tuple[str, ...] = ("none", "mse", "cos", "pkd", "ce", "mi")
    strategies: tuple[str, ...] = STRATEGIES
    mi_alphas: tuple[float, ...] = PAPER_ALPHAS
    kd_losses: tuple[str, ...] = ("ce", "mse")
    mixup: tuple[bool, ...] = (False, True)
    augmenters: tuple[str, ...] = ("contextual", "backtranslation", "random")
    # Ordered pipelines of up to this many augmenters; 0 turns augmentation off entirely.
    max_pipeline_length: int = 2
    aug_ps: tuple[float, ...] = (0.1, 0.3, 0.5)
    repeated_augs: tuple[int, ...] = (1,)

    def intermediate_options(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for loss in self.intermediate_losses:
            if loss == "none":  # the strategy is unused without an intermediate loss
                out.append({"loss": "none", "alpha": None, "strategy": "skip"})
                continue
            alphas = self.mi_alphas if loss == "mi" else (None,)
            out.extend({"loss": loss, "alpha": a, "strategy": s} for s in self.strategies for a in alphas)
        return out

    def augmentation_options(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"pipeline": (), "mode": "pipeline", "repeated_aug": 1}]
        for length in range(1, self.max_pipeline_length + 1):
            for pipeline, p, rep in product(
                permutations(self.augmenters, length), self.aug_ps, self.repeated_augs
            ):
                mode = "repeated" if rep > 1 else "pipeline"
                out.append({"pipeline": pipeline, "aug_p": p, "mode": mode, "repeated_aug": rep})
        return out


PAPER_GRID = SearchGrid()


def _compatible(
    config: KDConfig, task_kind: TaskKind, teacher: ModelDescriptor | None, student: ModelDescriptor | None
) -> bool:
    try:
        check_compatible(config, task_kind=task_kind, teacher=teacher, student=student)
    except ConfigError:
        return False
    return True


def candidate_space(
    task_kind: TaskKind,
    *,
    teacher: ModelDescriptor | None = None,
    student: ModelDescriptor | None = None,
    base_config: KDConfig | None = None,
    availability: Mapping[str, Availability] | None = None,
    grid: SearchGrid = PAPER_GRID,
) -> list[KDConfig]:
    """Every runnable, compatible pipeline of ``grid``, in a deterministic order.

    Args:
        task_kind: ``classification`` or ``regression``.
        teacher: Teacher facts (tokenizer, layers) for the compatibility check.
        student: Student facts.
        base_config: Supplies everything but the pipeline (training settings, loss weights,
            temperature, augmentation asset folders). Defaults to ``KDConfig()``.
        availability: Component availability report; None asks
            :func:`models.availability.component_availability` with default settings.
        grid: The options to enumerate.

    Returns:
        Distinct configs (by :meth:`KDConfig.pipeline_key`).

    Raises:
        ValueError: Unknown task kind.
    """
    if task_kind not in ("classification", "regression"):
        raise ValueError(f"task_kind must be 'classification' or 'regression', got {task_kind!r}")
    base = (base_config or KDConfig()).model_dump(mode="python")
    report = dict(availability) if availability is not None else component_availability()
    out: list[KDConfig] = []
    seen: set[str] = set()
    for inter, kd, mix, aug in product(
        grid.intermediate_options(), grid.kd_losses, grid.mixup, grid.augmentation_options()
    ):
        data = {
            **base,
            "intermediate": inter,
            "prediction": {**base["prediction"], "loss": kd},
            "mixup": {**base["mixup"], "enabled": mix},
            "augmentation": {**base["augmentation"], **aug},
        }
        config = KDConfig.model_validate(data)
        if not _compatible(config, task_kind, teacher, student) or not runnable(config, report):
            continue
        key = config.pipeline_key()
        if key not in seen:
            seen.add(key)
            out.append(config)
    return out
