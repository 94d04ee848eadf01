"""SYNTHETIC sweep histories for tests and benchmark plumbing. Not knowledge about KD.

Every ratio here comes from a made-up formula with a known optimum, so tests can check that the
meta-learner finds structure that exists; nothing here says which pipeline is good on real data.
Run ``python -m tests.recommender.synthetic --out FILE`` to write one (records are tagged
``hardware="synthetic"``, ``code_version="synthetic-history"``).
"""

from __future__ import annotations

import argparse

import numpy as np

from models.availability import Availability
from models.config import KDConfig, ModelDescriptor
from recommender.records import SweepRecord, write_records
from recommender.space import SearchGrid, candidate_space

VOCAB = "synthetic-wordpiece"
TEACHERS = (
    ModelDescriptor("syn-teacher-12", "bert", 12, 768, 110_000_000, 12, VOCAB),
    ModelDescriptor("syn-teacher-24", "bert", 24, 1024, 335_000_000, 16, VOCAB),
)
STUDENTS = (
    ModelDescriptor("syn-student-2", "bert", 2, 128, 4_400_000, 2, VOCAB),
    ModelDescriptor("syn-student-4", "bert", 4, 312, 14_500_000, 12, VOCAB),
    ModelDescriptor("syn-student-6", "bert", 6, 768, 67_000_000, 12, VOCAB),
)
ALL_AVAILABLE = {  # a made-up machine where every component can run
    **{
        f"augmenter:{k}": Availability(True, "synthetic") for k in ("contextual", "backtranslation", "random")
    },
    **{f"prediction_loss:{k}": Availability(True, "synthetic") for k in ("ce", "mse", "kl")},
    **{
        f"intermediate_loss:{k}": Availability(True, "synthetic")
        for k in ("none", "mse", "cos", "pkd", "ce", "mi")
    },
    **{f"strategy:{k}": Availability(True, "synthetic") for k in ("skip", "last", "emd")},
    "mixup": Availability(True, "synthetic"),
}
SMALL_GRID = SearchGrid(max_pipeline_length=1, aug_ps=(0.1, 0.3))


def synthetic_effect(config: KDConfig, meta: dict[str, float], student: ModelDescriptor) -> float:
    """The made-up pipeline effect: each component's best option depends on the dataset."""
    small_data = meta["log_n_train"] < 4.0
    small_student = (student.num_layers or 4) <= 2
    inter, aug = config.intermediate, config.augmentation
    effect = {"none": -0.02, "mse": 0.0, "cos": -0.004, "ce": -0.006, "pkd": -0.003, "mi": 0.002}[inter.loss]
    if inter.loss == "mi":
        best_alpha = 0.9 if meta["is_pair"] else 0.5
        effect -= 0.02 * abs((inter.alpha or 0.0) - best_alpha)
    if inter.loss != "none":
        effect += {"skip": 0.003, "last": -0.004, "emd": 0.006 if small_student else -0.006}[inter.strategy]
    effect += 0.004 if (config.prediction.loss == "mse") == bool(meta["is_regression"]) else -0.002
    if aug.pipeline:
        effect += (0.03 if small_data else -0.008) - 0.01 * abs(aug.aug_p - 0.3)
        effect += 0.004 if aug.pipeline[0] == "random" else 0.0
    if config.mixup.enabled:
        effect += 0.006 if small_data else -0.003
    return effect


def synthetic_dataset_meta(rng: np.random.Generator, index: int) -> dict[str, float]:
    log_n = float(rng.uniform(3.0, 5.6))
    is_regression = float(index % 5 == 4)
    meta = {
        "n_train": float(round(10**log_n)),
        "log_n_train": log_n,
        "is_regression": is_regression,
        "is_pair": float(rng.integers(0, 2)),
        "n_labels": 1.0 if is_regression else float(rng.integers(2, 4)),
        "len_mean": float(rng.uniform(8, 60)),
        "type_token_ratio": float(rng.uniform(0.05, 0.4)),
    }
    meta.update({f"emb_{i}": float(v) for i, v in enumerate(rng.normal(size=8))})
    return meta


def synthetic_history(
    n_datasets: int = 8,
    *,
    runs_per_group: tuple[int, int] = (12, 60),
    noise: float = 0.002,
    seed: int = 0,
    grid: SearchGrid = SMALL_GRID,
) -> list[SweepRecord]:
    """A SYNTHETIC history: unequal numbers of runs per dataset, every dataset's groups sampled
    from the candidate grid, ratio = base + :func:`synthetic_effect` + Gaussian noise."""
    rng = np.random.default_rng(seed)
    records: list[SweepRecord] = []
    spaces = {
        kind: candidate_space(
            kind, teacher=TEACHERS[0], student=STUDENTS[0], availability=ALL_AVAILABLE, grid=grid
        )
        for kind in ("classification", "regression")
    }
    for d in range(n_datasets):
        meta = synthetic_dataset_meta(rng, d)
        difficulty = float(rng.uniform(0.0, 0.3))
        kind = "regression" if meta["is_regression"] else "classification"
        for teacher in TEACHERS[: 1 + d % 2]:
            teacher_score = float(0.95 - difficulty / 2)
            for student in STUDENTS:
                base = 0.99 - difficulty * (12 / (student.num_layers or 4)) / 6
                n_runs = int(rng.integers(*runs_per_group))
                for i in rng.choice(len(spaces[kind]), size=min(n_runs, len(spaces[kind])), replace=False):
                    config = spaces[kind][i]
                    ratio = base + synthetic_effect(config, meta, student) + float(rng.normal(0, noise))
                    records.append(
                        SweepRecord(
                            dataset_id=f"syn-{d}",
                            teacher=teacher,
                            student=student,
                            kd_config=config,
                            student_score=ratio * teacher_score,
                            teacher_score=teacher_score,
                            meta_features={**meta, "teacher_score": teacher_score},
                            metric="synthetic",
                            hardware="synthetic",
                            code_version="synthetic-history",
                            seed=int(i),
                            source="own",
                            run_id=f"syn-{d}-{teacher.name}-{student.name}-{i}",
                        )
                    )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    records = synthetic_history(args.datasets, seed=args.seed)
    write_records(records, args.out)
    print(f"wrote {len(records)} SYNTHETIC records to {args.out}")


if __name__ == "__main__":
    main()
