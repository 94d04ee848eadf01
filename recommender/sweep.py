"""Sweep planning: which KD pipelines to train on which (dataset, student) pairs. Torch-free.

A sweep is a list of :class:`PlannedRun`: for every (dataset, student) group, ``budget`` pipelines
drawn from :func:`~recommender.space.candidate_space`:

- ``space="random"``: a seeded uniform sample of the group's candidates;
- ``space="grid"``: the whole candidate grid in a *balanced* order, truncated to the budget. The
  order is greedy: each next pipeline is the one whose most-used component level (intermediate
  loss, strategy, MI-alpha, KD loss, mixup, augmentation on/off, augmenter, aug_p), relative to
  its component's fair share, is used least; then the lowest mean use; then a seeded random
  priority. So every level appears within the first few runs and the levels stay balanced as the
  budget grows (augmentation on and off alternate, each intermediate loss gets a tenth).

Each group draws with its own seed (derived from the sweep seed, dataset and student), so groups
cover different corners of the space while each stays balanced. Runs are interleaved across groups
(first pipeline of every group, then the second, ...), so a sweep stopped early still covers every
group. Every run has a content-addressed :func:`run_key`: the same data, teacher, student, pipeline
(training settings and seed included) and teacher fine-tuning give the same key in any store,
which is what makes sweeps resumable.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from models.availability import Availability
from models.config import (
    AUGMENTERS,
    INTERMEDIATE_LOSSES,
    PAPER_ALPHAS,
    PREDICTION_LOSSES,
    STRATEGIES,
    KDConfig,
    ModelDescriptor,
    StudentSpec,
    TaskKind,
    TeacherTrainingConfig,
)
from recommender.space import SearchGrid, candidate_space

Space = Literal["grid", "random"]
SPACES = ("grid", "random")

# Every component of the engine; candidate_space drops what cannot run here (e.g. contextual
# augmentation without a masked-LM checkpoint). Single augmenters keep runs affordable on CPU.
SWEEP_GRID = SearchGrid(
    intermediate_losses=INTERMEDIATE_LOSSES,
    strategies=STRATEGIES,
    mi_alphas=PAPER_ALPHAS,
    kd_losses=PREDICTION_LOSSES,
    mixup=(False, True),
    augmenters=AUGMENTERS,
    max_pipeline_length=1,
    aug_ps=(0.1, 0.3),
)


def component_levels(config: KDConfig) -> list[tuple[str, str]]:
    """The (component, level) pairs a pipeline uses; sub-components only where they apply."""
    inter, aug = config.intermediate, config.augmentation
    out = [
        ("intermediate", inter.loss),
        ("prediction", config.prediction.loss),
        ("mixup", "on" if config.mixup.enabled else "off"),
        ("augmentation", "on" if aug.pipeline else "off"),
    ]
    if inter.loss != "none":
        out.append(("strategy", inter.strategy))
    if inter.loss == "mi":
        out.append(("mi_alpha", f"{inter.alpha:g}"))
    out.extend(("augmenter", name) for name in aug.pipeline)
    if aug.pipeline:
        out.append(("aug_p", f"{aug.aug_p:g}"))
    return out


def coverage(configs: Sequence[KDConfig]) -> dict[str, dict[str, int]]:
    """component -> level -> number of pipelines using it (levels sorted)."""
    counts: dict[str, Counter[str]] = {}
    for config in configs:
        for component, level in component_levels(config):
            counts.setdefault(component, Counter())[level] += 1
    return {c: dict(sorted(levels.items())) for c, levels in counts.items()}


def balanced_order(configs: Sequence[KDConfig], seed: int, limit: int | None = None) -> list[int]:
    """Indices of ``configs`` in the greedy balanced order (see the module docstring).

    Args:
        configs: Candidate pipelines.
        seed: Seed of the tie-breaking priority.
        limit: Stop after this many (None: order them all).
    """
    n = len(configs)
    limit = n if limit is None else min(limit, n)
    if limit <= 0:
        return []
    entries = [component_levels(c) for c in configs]
    levels = sorted({e for row in entries for e in row})
    index = {e: j for j, e in enumerate(levels)}
    per_component = Counter(component for component, _ in levels)
    # uses x levels-in-its-component: a level used exactly its fair share scores the same in a
    # 2-level and in a 10-level component
    scale = np.zeros((n, len(levels)))
    for i, row in enumerate(entries):
        for component, level in row:
            scale[i, index[(component, level)]] = per_component[component]
    mask = scale > 0
    n_levels = mask.sum(axis=1)
    priority = np.random.default_rng(seed).permutation(n)  # the last tie-break
    used = np.zeros(len(levels))
    free = np.arange(n)
    order: list[int] = []
    for _ in range(limit):
        load = scale[free] * used  # (n_free, n_levels)
        worst = np.where(mask[free], load, -np.inf).max(axis=1)
        mean = load.sum(axis=1) / n_levels[free]
        pick = int(free[np.lexsort((priority[free], mean, worst))[0]])
        order.append(pick)
        free = free[free != pick]
        used += mask[pick]
    return order


def draw_pipelines(
    candidates: Sequence[KDConfig], *, space: Space, budget: int | None, seed: int
) -> list[KDConfig]:
    """``budget`` pipelines of ``candidates`` (all for None) in the order ``space`` defines.

    Raises:
        ValueError: Unknown space or a budget below 1.
    """
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {space!r}")
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    if space == "random":
        picks = np.random.default_rng(seed).permutation(len(candidates))[:budget]
        return [candidates[int(i)] for i in picks]
    return [candidates[i] for i in balanced_order(candidates, seed, budget)]


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from ``parts`` that does not depend on Python's hash seed."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()
    return int(digest[:8], 16)


def run_key(
    dataset_key: str,
    teacher: str,
    student: StudentSpec,
    kd_config: KDConfig,
    teacher_training: TeacherTrainingConfig,
) -> str:
    """The content address of one run (24 hex digits).

    Args:
        dataset_key: What identifies the data, ideally its content digest.
        teacher: The teacher as the engine receives it (built-in name or folder).
        student: The student spec.
        kd_config: The full pipeline, training settings and seed included.
        teacher_training: How a head-less teacher is fine-tuned first.
    """
    body = {
        "dataset": dataset_key,
        "teacher": teacher,
        "student": student.model_dump(mode="json"),
        "kd_config": kd_config.model_dump(mode="json"),
        "teacher_training": teacher_training.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class SweepGroup:
    """One (dataset, student) pair of a sweep, with what the candidate space needs to know.

    ``dataset`` is a label for people and records; ``dataset_key`` identifies the content (the
    dataset digest) and goes into the run keys.
    """

    dataset: str
    dataset_key: str
    task_kind: TaskKind
    teacher: str
    student: StudentSpec
    teacher_descriptor: ModelDescriptor | None = None
    student_descriptor: ModelDescriptor | None = None


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: a group, its pipeline, its place in the group's order and its key."""

    group: SweepGroup
    kd_config: KDConfig
    teacher_training: TeacherTrainingConfig
    position: int
    run_key: str


def plan_sweep(
    groups: Sequence[SweepGroup],
    *,
    space: Space = "grid",
    budget: int | None = None,
    seed: int = 0,
    grid: SearchGrid = SWEEP_GRID,
    base_config: KDConfig | None = None,
    teacher_training: TeacherTrainingConfig | None = None,
    availability: Mapping[str, Availability] | None = None,
) -> list[PlannedRun]:
    """A deterministic sweep plan: ``budget`` pipelines per group, interleaved across groups.

    Args:
        groups: The (dataset, student) pairs.
        space: ``grid`` (balanced order of the full grid) or ``random`` (seeded sample).
        budget: Pipelines per group; None takes every candidate.
        seed: Sweep seed; each group's draw uses a seed derived from it.
        grid: Options enumerated by :func:`~recommender.space.candidate_space`.
        base_config: Training settings, loss weights and asset folders of every run.
        teacher_training: Fine-tuning of a head-less teacher (part of the run key).
        availability: Component availability; None asks the engine (filesystem checks only).

    Raises:
        ValueError: No groups, bad space or budget, or a group without a runnable candidate.
    """
    if not groups:
        raise ValueError("a sweep needs at least one (dataset, student) group")
    tt = teacher_training or TeacherTrainingConfig()
    per_group: list[list[PlannedRun]] = []
    for g in groups:
        candidates = candidate_space(
            g.task_kind,
            teacher=g.teacher_descriptor,
            student=g.student_descriptor,
            base_config=base_config,
            availability=availability,
            grid=grid,
        )
        if not candidates:
            raise ValueError(
                f"no runnable pipeline for {g.dataset} ({g.task_kind}) with student {g.student.describe()}: "
                "the grid leaves nothing this task can run (regression needs kd loss 'mse')"
            )
        seed_g = stable_seed(seed, g.dataset_key, g.teacher, g.student.model_dump_json())
        picked = draw_pipelines(candidates, space=space, budget=budget, seed=seed_g)
        per_group.append(
            [
                PlannedRun(g, c, tt, i, run_key(g.dataset_key, g.teacher, g.student, c, tt))
                for i, c in enumerate(picked)
            ]
        )
    runs = [r for i in range(max(map(len, per_group))) for group in per_group for r in group[i : i + 1]]
    keys = [r.run_key for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError("two groups of the sweep plan the same run (a dataset or student is listed twice)")
    return runs
