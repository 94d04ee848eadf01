"""Feature vectors for the meta-learner: dataset context + teacher/student numbers + KD config.

A row is ``[context | config]``. The context part is the dataset's meta-features (the names are
learned from the training records) followed by descriptor numbers of the teacher and student, so
unseen model names still featurize. The config part has a fixed layout from the registry-key
tuples of :mod:`models.config`. Missing values are NaN (the tree ensembles handle them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from models.config import (
    AUGMENTERS,
    INTERMEDIATE_LOSSES,
    PREDICTION_LOSSES,
    STRATEGIES,
    KDConfig,
    ModelDescriptor,
)

NAN = float("nan")

# Descriptor-derived features; teacher_* keys in meta-features are read here, not as dataset features.
DESCRIPTOR_FEATURES = (
    "teacher_layers",
    "teacher_hidden",
    "teacher_log_params",
    "teacher_score",
    "student_layers",
    "student_hidden",
    "student_log_params",
    "layer_ratio",
    "hidden_ratio",
    "log_param_ratio",
    "same_tokenizer",
    "same_family",
)
_TEACHER_META = ("teacher_layers", "teacher_hidden", "teacher_params", "teacher_score")

CONFIG_FEATURES = (
    *(f"inter={k}" for k in INTERMEDIATE_LOSSES),
    "mi_alpha",
    *(f"strategy={k}" for k in STRATEGIES),
    *(f"kd={k}" for k in PREDICTION_LOSSES),
    "temperature",
    "mixup",
    "aug_len",
    *(f"aug_pos={k}" for k in AUGMENTERS),
    "aug_p",
    "repeated_aug",
    "w_kd",
    "w_inter",
    "w_hard",
)
# Which pipeline component each config feature belongs to (for explanations).
CONFIG_COMPONENTS = {
    "intermediate": [
        i for i, n in enumerate(CONFIG_FEATURES) if n.startswith(("inter=", "mi_alpha", "strategy="))
    ],
    "prediction": [i for i, n in enumerate(CONFIG_FEATURES) if n.startswith(("kd=", "temperature"))],
    "mixup": [CONFIG_FEATURES.index("mixup")],
    "augmentation": [i for i, n in enumerate(CONFIG_FEATURES) if n.startswith(("aug_", "repeated_aug"))],
    "weights": [i for i, n in enumerate(CONFIG_FEATURES) if n.startswith("w_")],
}


def config_vector(config: KDConfig | None) -> np.ndarray:
    """The fixed-layout numeric encoding of a pipeline (all NaN for None)."""
    out = np.full(len(CONFIG_FEATURES), NAN)
    if config is None:
        return out
    inter, aug = config.intermediate, config.augmentation
    values: dict[str, float] = dict.fromkeys(CONFIG_FEATURES, 0.0)
    values[f"inter={inter.loss}"] = 1.0
    alpha = inter.effective_alpha
    values["mi_alpha"] = NAN if alpha is None else alpha
    if inter.loss != "none":  # the strategy only matters with an intermediate loss
        values[f"strategy={inter.strategy}"] = 1.0
    values[f"kd={config.prediction.loss}"] = 1.0
    values["temperature"] = config.prediction.temperature
    values["mixup"] = float(config.mixup.enabled)
    values["aug_len"] = float(len(aug.pipeline))
    for pos, name in enumerate(aug.pipeline, 1):
        values[f"aug_pos={name}"] = float(pos)
    values["aug_p"] = aug.aug_p if aug.pipeline else 0.0
    values["repeated_aug"] = float(aug.repeated_aug)
    values["w_kd"], values["w_inter"], values["w_hard"] = (
        config.weights.kd,
        config.weights.intermediate,
        config.weights.hard,
    )
    out[:] = [values[n] for n in CONFIG_FEATURES]
    return out


def _f(value: float | int | None) -> float:
    return NAN if value is None else float(value)


def _log10(value: float | int | None) -> float:
    return math.log10(value) if value else NAN


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else NAN


def _same(a: str | None, b: str | None) -> float:
    return NAN if a is None or b is None else float(a == b)


def descriptor_vector(
    teacher: ModelDescriptor, student: ModelDescriptor, meta_features: Mapping[str, float | None]
) -> np.ndarray:
    """Numbers of :data:`DESCRIPTOR_FEATURES`; teacher facts fall back to meta-features."""
    t_layers = _f(
        teacher.num_layers if teacher.num_layers is not None else meta_features.get("teacher_layers")
    )
    t_hidden = _f(
        teacher.hidden_size if teacher.hidden_size is not None else meta_features.get("teacher_hidden")
    )
    t_params = teacher.num_params if teacher.num_params is not None else meta_features.get("teacher_params")
    s_layers, s_hidden = _f(student.num_layers), _f(student.hidden_size)
    t_lp, s_lp = _log10(t_params), _log10(student.num_params)
    return np.array(
        [
            t_layers,
            t_hidden,
            t_lp,
            _f(meta_features.get("teacher_score")),
            s_layers,
            s_hidden,
            s_lp,
            _div(s_layers, t_layers),
            _div(s_hidden, t_hidden),
            s_lp - t_lp,
            _same(teacher.tokenizer_id, student.tokenizer_id),
            _same(teacher.family, student.family),
        ]
    )


def meta_feature_names(
    meta_maps: Iterable[Mapping[str, float | None]], exclude_prefixes: Sequence[str] = ()
) -> list[str]:
    """Sorted dataset feature names present (not None) in at least one mapping."""
    names: set[str] = set()
    for meta in meta_maps:
        names.update(k for k, v in meta.items() if v is not None)
    skip = (*_TEACHER_META, *exclude_prefixes)
    return sorted(n for n in names if not n.startswith(tuple(skip)))


class FeatureSpace:
    """The column layout of one fitted meta-learner.

    Args:
        meta_names: Dataset meta-feature names (from :func:`meta_feature_names`).
    """

    def __init__(self, meta_names: Sequence[str]) -> None:
        self.meta_names = list(meta_names)
        self.context_names = [*self.meta_names, *DESCRIPTOR_FEATURES]
        self.names = [*self.context_names, *CONFIG_FEATURES]

    @property
    def n_context(self) -> int:
        return len(self.context_names)

    def dataset_vector(self, meta_features: Mapping[str, float | None]) -> np.ndarray:
        return np.array([_f(meta_features.get(n)) for n in self.meta_names])

    def context_vector(
        self, meta_features: Mapping[str, float | None], teacher: ModelDescriptor, student: ModelDescriptor
    ) -> np.ndarray:
        """The ``[dataset | descriptors]`` part of a row."""
        return np.concatenate(
            [self.dataset_vector(meta_features), descriptor_vector(teacher, student, meta_features)]
        )

    def matrix(self, records: Sequence) -> np.ndarray:
        """(n_records, n_features) rows for sweep records (teacher score from the record if the
        meta-features lack it)."""
        rows = np.empty((len(records), len(self.names)))
        for i, r in enumerate(records):
            meta = r.meta_features
            if meta.get("teacher_score") is None and r.teacher_score is not None:
                meta = {**meta, "teacher_score": r.teacher_score}
            rows[i, : self.n_context] = self.context_vector(meta, r.teacher, r.student)
            rows[i, self.n_context :] = config_vector(r.kd_config)
        return rows


def standardize_fit(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales ignoring NaN (scale 1 for constant or empty columns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns are expected
        mean = np.nanmean(matrix, axis=0)
        std = np.nanstd(matrix, axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    std = np.where(np.isnan(std) | (std == 0), 1.0, std)
    return mean, std


def nan_distances(query: np.ndarray, table: np.ndarray) -> np.ndarray:
    """RMS distance of ``query`` (d,) to each row of ``table`` (m, d) over dims both know.

    Rows sharing no known dimension with the query are at distance ``inf``.
    """
    diff = table - query[None, :]  # (m, d)
    known = ~np.isnan(diff)
    count = known.sum(axis=1)
    sq = np.where(known, diff, 0.0) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.sqrt(sq.sum(axis=1) / count)
    return np.where(count > 0, dist, np.inf)
