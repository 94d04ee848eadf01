"""Search-space helpers for budgeted searches: fidelity rungs, flat Optuna parameters, snapping.

A search trains pipelines at growing fidelity (epochs). Rungs follow successive halving: the
first at ``min_epochs``, each next ``reduction_factor`` times longer, the last at the full
``max_epochs`` (Optuna's ``SuccessiveHalvingPruner`` judges a trial when its step reaches
``min_epochs * reduction_factor ** rung``, so the steps reported are these epoch counts).

A pipeline is described to Optuna as flat categorical parameters (one per component of
:func:`recommender.sweep.component_levels`; ``-`` where a sub-component does not apply), so its
samplers can learn which component levels pay off. A sampled point need not be a runnable
pipeline (e.g. a strategy with no intermediate loss), so it is snapped to the nearest untried
candidate of the search space. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.config import KDConfig
from recommender.sweep import component_levels

NOT_APPLICABLE = "-"
PARAMS = ("intermediate", "strategy", "mi_alpha", "prediction", "mixup", "augmentation", "augmenter", "aug_p")


def rungs(min_epochs: int, max_epochs: int, reduction_factor: int) -> list[int]:
    """The epochs of each rung: ``min_epochs * reduction_factor**k`` below ``max_epochs``, then it.

    Raises:
        ValueError: ``min_epochs`` above ``max_epochs``, or a reduction factor below 2.
    """
    if reduction_factor < 2:
        raise ValueError(f"reduction_factor must be at least 2, got {reduction_factor}")
    if not 1 <= min_epochs <= max_epochs:
        raise ValueError(f"min_epochs must be between 1 and the full epochs ({max_epochs}), got {min_epochs}")
    out = []
    epochs = min_epochs
    while epochs < max_epochs:
        out.append(epochs)
        epochs *= reduction_factor
    return [*out, max_epochs]


def flat_params(config: KDConfig) -> dict[str, str]:
    """The pipeline as one categorical value per component (``-`` where it does not apply)."""
    levels: dict[str, list[str]] = {}
    for component, level in component_levels(config):
        levels.setdefault(component, []).append(level)
    out = {name: "+".join(levels[name]) if name in levels else NOT_APPLICABLE for name in PARAMS}
    if out["augmenter"] == NOT_APPLICABLE:
        out["augmenter"] = "none"
    return out


def distributions(configs: Sequence[KDConfig]) -> dict[str, Any]:
    """Optuna categorical distributions covering every level the ``configs`` use."""
    from optuna.distributions import CategoricalDistribution

    choices: dict[str, set[str]] = {name: set() for name in PARAMS}
    for config in configs:
        for name, value in flat_params(config).items():
            choices[name].add(value)
    return {name: CategoricalDistribution(sorted(values)) for name, values in choices.items()}


def snap(params: Mapping[str, Any], candidates: Sequence[KDConfig], tried: set[str]) -> KDConfig | None:
    """The untried candidate whose flat parameters differ from ``params`` in the fewest components.

    Ties go to the earlier candidate (a fixed order keeps searches reproducible).

    Args:
        params: A sampled point (flat parameters).
        candidates: The runnable pipelines.
        tried: Pipeline keys (``KDConfig.pipeline_key``) already tried.

    Returns:
        The nearest untried candidate, or None when every candidate was tried.
    """
    best: tuple[int, int] | None = None
    pick = None
    for i, config in enumerate(candidates):
        if config.pipeline_key() in tried:
            continue
        flat = flat_params(config)
        distance = sum(flat[name] != params.get(name) for name in PARAMS)
        if best is None or (distance, i) < best:
            best, pick = (distance, i), config
    return pick
