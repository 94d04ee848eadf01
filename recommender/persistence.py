"""Versioned meta-learner artifacts: a skops file plus a JSON sidecar.

The skops file holds the fitted state as plain data (numbers, strings, arrays and scikit-learn
estimators), never a pickle of our own classes, so loading executes no arbitrary code: skops
refuses every type outside its defaults and :data:`TRUSTED_TYPES`. The sidecar
(``<artifact>.json``) records the schema version, the training-records digest, library versions,
feature names, the creation time and an optional evaluation summary.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from models.config import KDConfig
from models.errors import AutoDistillerError
from recommender.explain import DatasetEvidence
from recommender.features import FeatureSpace
from recommender.learner import MetaLearner
from recommender.records import SweepRecord, records_digest
from recommender.space import SearchGrid

SCHEMA_VERSION = 2  # 2: conformal interval offsets, portfolio error scale, dataset evidence
# scikit-learn types that skops does not trust by default but that a HistGradientBoosting model
# needs; anything else in a file is refused.
TRUSTED_TYPES = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
_FITTED = (
    "model_",
    "dataset_mean_",
    "dataset_scale_",
    "dataset_matrix_",
    "interval_offsets_",
    "dataset_max_ratio_",
)
_SCALARS = ("pipeline_sigma_", "distance_scale_", "calibration_units_", "calibrated_")


class _HideTorch(importlib.abc.MetaPathFinder):
    """Makes ``import torch`` fail (ModuleNotFoundError) while installed on ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while skops loads)", name=name)
        return None


_SKOPS_LOCK = threading.Lock()


def _skops_io() -> Any:
    """Import ``skops.io`` without importing torch.

    On import, skops lists its trusted types by walking every scikit-learn module, and
    scikit-learn's array-API shim imports torch whenever torch is installed (seconds, hundreds
    of MB, for nothing: no estimator lives there). The walk skips modules that fail to import,
    so torch is hidden for that one import. Where torch is already loaded nothing is hidden.
    """
    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    with _SKOPS_LOCK:
        hider = _HideTorch()
        sys.meta_path.insert(0, hider)
        try:
            import skops.io
        finally:
            sys.meta_path.remove(hider)
    return skops.io


class ArtifactError(AutoDistillerError):
    """A meta-learner artifact is missing, of another schema version, or not safe to load."""

    code = "invalid_artifact"


def sidecar_path(path: str | Path) -> Path:
    """Where the JSON sidecar of ``path`` lives (``model.skops`` -> ``model.skops.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _params(learner: MetaLearner) -> dict[str, Any]:
    params = learner.get_params()
    params.pop("availability")  # a property of the machine that serves, not of the model
    params["exclude_prefixes"] = list(params["exclude_prefixes"])
    params["base_config"] = (
        None if params["base_config"] is None else params["base_config"].model_dump(mode="json")
    )
    params["grid"] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params["grid"]).items()}
    return params


def save_meta_learner(
    learner: MetaLearner,
    path: str | Path,
    *,
    records: Sequence[SweepRecord] | None = None,
    evaluation: dict[str, Any] | None = None,
) -> Path:
    """Write ``path`` (skops) and its JSON sidecar.

    Args:
        learner: A fitted :class:`MetaLearner`.
        path: Artifact file, conventionally ``*.skops``.
        records: The training records, for the sidecar's digest.
        evaluation: An evaluation summary to keep beside the model.

    Raises:
        ArtifactError: The learner is not fitted.
    """
    if not hasattr(learner, "model_"):
        raise ArtifactError("cannot save an unfitted MetaLearner: call fit(records) first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {name: getattr(learner, name) for name in _FITTED}
    state.update(
        schema_version=SCHEMA_VERSION,
        params=_params(learner),
        n_records=learner.n_records_,
        meta_names=list(learner.feature_space_.meta_names),
        dataset_ids=list(learner.dataset_ids_),
        group_model=getattr(learner, "group_model_", None),
        scalars={name: getattr(learner, name) for name in _SCALARS},
        dataset_evidence=[list(row) for row in learner.dataset_evidence_.rows],
    )
    sio = _skops_io()
    sio.dump(state, path)
    sidecar = {
        "schema_version": SCHEMA_VERSION,
        "records_digest": records_digest(records) if records is not None else None,
        "n_records": learner.n_records_,
        "library_versions": {
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "skops": sys.modules["skops"].__version__,
        },
        "feature_names": list(learner.feature_space_.names),
        "params": state["params"],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "calibration": {
            "coverage": learner.coverage,
            "unit": learner.calibration,
            "units_held_out": learner.calibration_units_,
            "interval_offsets": [float(v) for v in learner.interval_offsets_],
            "pipeline_sigma": learner.pipeline_sigma_,
        },
        "evaluation": evaluation,
    }
    sidecar_path(path).write_text(json.dumps(sidecar, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of an artifact, checked for this schema version.

    Raises:
        ArtifactError: No sidecar, unreadable, or another schema version.
    """
    side = sidecar_path(path)
    if not side.is_file():
        raise ArtifactError(f"artifact sidecar not found: {side}")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"artifact sidecar {side} is not valid JSON: {exc}") from None
    _check_version(meta.get("schema_version"), side)
    return meta


def _check_version(version: Any, where: Path) -> None:
    if version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{where} has schema version {version!r}, this code reads version {SCHEMA_VERSION}; "
            "refit the meta-learner (autodistiller meta refit) to rebuild it"
        )


def load_meta_learner(path: str | Path) -> MetaLearner:
    """Load an artifact written by :func:`save_meta_learner` without running arbitrary code.

    Raises:
        ArtifactError: Missing file or sidecar, another schema version, or a type outside the
            trusted set.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"meta-learner artifact not found: {path}")
    read_sidecar(path)
    sio = _skops_io()
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a corrupt zip or a foreign format
        raise ArtifactError(f"{path} is not a skops artifact: {exc}") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise ArtifactError(f"{path} contains types that are not trusted: {', '.join(refused)}")
    state = sio.load(path, trusted=list(untrusted))
    _check_version(state.get("schema_version"), path)
    params = dict(state["params"])
    params["exclude_prefixes"] = tuple(params["exclude_prefixes"])
    if params["base_config"] is not None:
        params["base_config"] = KDConfig.from_dict(params["base_config"])
    params["grid"] = SearchGrid(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in params["grid"].items()}
    )
    learner = MetaLearner(**params)
    for name in _FITTED:
        setattr(learner, name, state[name])
    if state["group_model"] is not None:
        learner.group_model_ = state["group_model"]
    learner.feature_space_ = FeatureSpace(state["meta_names"])
    learner.feature_names_in_ = np.array(learner.feature_space_.names, dtype=object)
    learner.n_features_in_ = len(learner.feature_space_.names)
    learner.dataset_ids_ = list(state["dataset_ids"])
    learner.n_records_ = int(state["n_records"])
    scalars = state["scalars"]
    learner.pipeline_sigma_ = float(scalars["pipeline_sigma_"])
    learner.distance_scale_ = float(scalars["distance_scale_"])
    learner.calibration_units_ = int(scalars["calibration_units_"])
    learner.calibrated_ = bool(scalars["calibrated_"])
    learner.dataset_evidence_ = DatasetEvidence([list(row) for row in state["dataset_evidence"]])
    return learner
