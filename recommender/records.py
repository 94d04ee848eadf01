"""Sweep records: one finished KD run each, the meta-learner's training data.

A :class:`SweepRecord` holds the dataset's meta-features, the teacher and student descriptors, the
KD pipeline (:class:`~models.config.KDConfig`), the scores and ``ratio`` (student / teacher), the
cost and the provenance. Records are append-only facts; they travel as JSON-safe dicts
(:meth:`SweepRecord.to_dict`) and as Parquet / CSV / JSON-lines files (:func:`write_records`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import pandas as pd

from models.config import KDConfig, ModelDescriptor

Source = Literal["own", "imported"]
SOURCES = ("own", "imported")

# Scalar columns of the tabular formats, in order; the nested fields travel as JSON text.
_SCALARS = (
    "run_id",
    "dataset_id",
    "student_score",
    "teacher_score",
    "ratio",
    "no_kd_score",
    "metric",
    "wall_time_s",
    "hardware",
    "code_version",
    "seed",
    "created_at",
    "source",
)
_NESTED = ("meta_features", "teacher", "student", "kd_config", "raw")


def _clean_float(value: Any, name: str) -> float | None:
    """None for missing (None or NaN), else a finite-or-inf float; a clear error for junk."""
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or None, got {value!r}") from None
    return None if math.isnan(out) else out


@dataclass(frozen=True)
class SweepRecord:
    """One finished KD run.

    ``ratio`` is computed from the two scores when not given (and the teacher score is not 0).
    ``meta_features`` and ``raw`` (the source's own fields, e.g. the paper table's columns) are
    stored as read-only mappings. ``kd_config`` may be None only for imported rows whose pipeline
    could not be expressed as a :class:`KDConfig`.
    """

    dataset_id: str
    teacher: ModelDescriptor
    student: ModelDescriptor
    kd_config: KDConfig | None
    student_score: float | None
    teacher_score: float | None = None
    ratio: float | None = None
    meta_features: Mapping[str, float | None] = field(default_factory=dict)
    no_kd_score: float | None = None
    metric: str | None = None
    wall_time_s: float | None = None
    hardware: str | None = None
    code_version: str | None = None
    seed: int | None = None
    created_at: str | None = None
    source: Source = "own"
    run_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.dataset_id, str) or not self.dataset_id.strip():
            raise ValueError("dataset_id must be a non-empty string")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        for name in ("teacher", "student"):
            if not isinstance(getattr(self, name), ModelDescriptor):
                raise ValueError(f"{name} must be a ModelDescriptor")
        if self.kd_config is not None and not isinstance(self.kd_config, KDConfig):
            raise ValueError("kd_config must be a KDConfig or None")
        for name in ("student_score", "teacher_score", "ratio", "no_kd_score", "wall_time_s"):
            object.__setattr__(self, name, _clean_float(getattr(self, name), name))
        if self.ratio is None and self.student_score is not None and self.teacher_score:
            object.__setattr__(self, "ratio", self.student_score / self.teacher_score)
        meta = {str(k): _clean_float(v, f"meta_features[{k!r}]") for k, v in self.meta_features.items()}
        object.__setattr__(self, "meta_features", MappingProxyType(meta))
        object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))

    @property
    def group_key(self) -> tuple[str, str, str]:
        """(dataset, teacher, student): the unit inside which configs are compared."""
        return (self.dataset_id, self.teacher.name, self.student.name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (missing numbers are None, nested objects are plain dicts)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _SCALARS}
        out["meta_features"] = dict(self.meta_features)
        out["teacher"] = self.teacher.to_dict()
        out["student"] = self.student.to_dict()
        out["kd_config"] = None if self.kd_config is None else self.kd_config.model_dump(mode="json")
        out["raw"] = {k: _json_safe(v) for k, v in self.raw.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepRecord:
        """Inverse of :meth:`to_dict`; validates the KD config.

        Raises:
            ValueError: A required field is missing or a value has the wrong type.
            models.errors.ConfigError: The stored KD config is invalid.
        """
        missing = [k for k in ("dataset_id", "teacher", "student") if data.get(k) is None]
        if missing:
            raise ValueError(f"sweep record is missing {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"sweep record has unknown fields {unknown}")
        kwargs = {k: data[k] for k in known if k in data and k not in _NESTED}
        cfg = data.get("kd_config")
        seed = kwargs.get("seed")
        if seed is not None and not (isinstance(seed, float) and math.isnan(seed)):
            kwargs["seed"] = int(seed)
        else:
            kwargs["seed"] = None
        return cls(
            teacher=ModelDescriptor.from_dict(dict(data["teacher"])),
            student=ModelDescriptor.from_dict(dict(data["student"])),
            kd_config=None if cfg is None else KDConfig.from_dict(dict(cfg)),
            meta_features=dict(data.get("meta_features") or {}),
            raw=dict(data.get("raw") or {}),
            **kwargs,
        )


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _canonical(record: SweepRecord) -> str:
    return json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)


def records_digest(records: Iterable[SweepRecord]) -> str:
    """sha256 over the canonical JSON of the records, independent of their order."""
    h = hashlib.sha256()
    for line in sorted(_canonical(r) for r in records):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def _to_rows(records: Iterable[SweepRecord]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        d = r.to_dict()
        for name in _NESTED:
            d[name] = json.dumps(d[name], sort_keys=True, allow_nan=False)
        rows.append(d)
    return rows


def write_records(records: Iterable[SweepRecord], path: str | Path) -> Path:
    """Write records as ``.parquet``, ``.csv`` or ``.jsonl`` (chosen by the suffix).

    Tabular formats keep scalar fields as columns and the nested ones (meta-features,
    descriptors, KD config, raw fields) as JSON text, so a round trip is exact.

    Raises:
        ValueError: Unknown suffix.
    """
    path = Path(path)
    records = list(records)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r.to_dict(), sort_keys=True, allow_nan=False) + "\n")
        return path
    frame = pd.DataFrame(_to_rows(records), columns=[*_SCALARS, *_NESTED])
    frame["seed"] = frame["seed"].astype("Int64")
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise ValueError(f"records file must end in .parquet, .csv or .jsonl, got {path.name!r}")
    return path


def read_records(path: str | Path) -> list[SweepRecord]:
    """Read records written by :func:`write_records`, in file order.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Unknown suffix, missing columns or a malformed row (the row is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"records file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        dicts = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        dicts.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path.name} line {lineno}: invalid JSON ({exc})") from None
        return [_from_row(d, f"{path.name} line {i + 1}") for i, d in enumerate(dicts)]
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix == ".csv":
        frame = pd.read_csv(
            path,
            dtype={
                "run_id": str,
                "dataset_id": str,
                "metric": str,
                "hardware": str,
                "code_version": str,
                "created_at": str,
            },
        )
    else:
        raise ValueError(f"records file must end in .parquet, .csv or .jsonl, got {path.name!r}")
    missing = [c for c in ("dataset_id", "teacher", "student") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path.name} is not a records file: missing columns {missing}")
    out = []
    for i, row in enumerate(frame.to_dict(orient="records")):
        d = {k: (None if _is_missing(v) else v) for k, v in row.items()}
        for name in _NESTED:
            if isinstance(d.get(name), str):
                d[name] = json.loads(d[name])
        out.append(_from_row(d, f"{path.name} row {i + 1}"))
    return out


def _is_missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and the like are never "missing"
        return False


def _from_row(data: dict[str, Any], where: str) -> SweepRecord:
    try:
        return SweepRecord.from_dict(data)
    except Exception as exc:
        raise ValueError(f"{where}: {exc}") from exc
