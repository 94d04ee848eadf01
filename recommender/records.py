"""Sweep records: one finished KD run each, the meta-learner's training data.

A :class:`SweepRecord` holds the dataset's meta-features, the teacher and student descriptors, the
KD pipeline (:class:`~models.config.KDConfig`), the scores and ``ratio`` (student / teacher), the
cost, the provenance and the run's *fidelity* (training and dev examples, epochs, max length: how
much a run saw, which decides how far its score can be trusted). Records are append-only facts;
they travel as JSON-safe dicts (:meth:`SweepRecord.to_dict`) and as Parquet / CSV / JSON-lines
files (:func:`write_records`). :func:`seed_means` folds repeated seeds of one cell into one record,
the view the evaluation ranks.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
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
    "train_examples",
    "dev_examples",
    "epochs",
    "max_length",
)
# Fidelity columns, added after the first knowledge base was recorded: files without them read as
# None, and the digest leaves them out while they are None, so older files keep their digest.
FIDELITY = ("train_examples", "dev_examples", "epochs", "max_length")
_INTS = ("seed", *FIDELITY)
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
    could not be expressed as a :class:`KDConfig`. The fidelity fields (``train_examples``,
    ``dev_examples``, ``epochs``, ``max_length``) are what the run actually used; records from
    before they existed leave them None, and :meth:`fidelity` fills in what can be inferred.
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
    train_examples: int | None = None
    dev_examples: int | None = None
    epochs: int | None = None
    max_length: int | None = None

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
        for name in _INTS:
            object.__setattr__(self, name, _clean_int(getattr(self, name), name))
        meta = {str(k): _clean_float(v, f"meta_features[{k!r}]") for k, v in self.meta_features.items()}
        object.__setattr__(self, "meta_features", MappingProxyType(meta))
        object.__setattr__(self, "raw", MappingProxyType(dict(self.raw)))

    @property
    def group_key(self) -> tuple[str, str, str]:
        """(dataset, teacher, student): the unit inside which configs are compared."""
        return (self.dataset_id, self.teacher.name, self.student.name)

    def fidelity(self) -> dict[str, int | None]:
        """Training examples, dev examples, epochs and max length of the run.

        Stored values win; for older records epochs and max length come from the KD config's
        training settings and the training examples from the ``n_train`` meta-feature (the
        dev set size of those records is unknown: None).
        """
        training = self.kd_config.training if self.kd_config is not None else None
        n_train = self.meta_features.get("n_train")
        inferred = {
            "train_examples": None if n_train is None else int(n_train),
            "dev_examples": None,
            "epochs": training.epochs if training else None,
            "max_length": training.max_length if training else None,
        }
        return {k: inferred[k] if getattr(self, k) is None else getattr(self, k) for k in FIDELITY}

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
        return cls(
            teacher=ModelDescriptor.from_dict(dict(data["teacher"])),
            student=ModelDescriptor.from_dict(dict(data["student"])),
            kd_config=None if cfg is None else KDConfig.from_dict(dict(cfg)),
            meta_features=dict(data.get("meta_features") or {}),
            raw=dict(data.get("raw") or {}),
            **kwargs,
        )


def _clean_int(value: Any, name: str) -> int | None:
    """None for missing (None or NaN, as a tabular column holds it), else an int."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number or None, got {value!r}")
    return int(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _canonical(record: SweepRecord) -> str:
    data = record.to_dict()
    for name in FIDELITY:  # absent fidelity hashes as before the columns existed
        if data[name] is None:
            del data[name]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


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
    for name in _INTS:
        frame[name] = frame[name].astype("Int64")
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


def cell_key(record: SweepRecord) -> tuple[str, ...]:
    """The (variant, teacher, student, pipeline) cell of a record: everything but the seed.

    The pipeline part is the full KD config with the training seed removed, so runs that differ in
    training settings (epochs, max length) stay in different cells. A record without a KD config is
    a cell of its own (its run id, or its position-free canonical form).
    """
    if record.kd_config is None:
        return (*record.group_key, "run", record.run_id or _canonical(record))
    config = record.kd_config.model_dump(mode="json")
    config["training"].pop("seed", None)
    fidelity = [record.train_examples, record.dev_examples]
    return (*record.group_key, json.dumps([config, fidelity], sort_keys=True))


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1); None below two values."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def seed_means(records: Iterable[SweepRecord]) -> list[SweepRecord]:
    """One record per (variant, teacher, student, pipeline) cell, its seeds averaged.

    Scores, ratio, no-KD score, wall time and numeric meta-features are the means over the cell's
    runs (each ignoring missing values; the ratio is the mean of the per-run ratios). The result's
    ``seed`` is None when seeds were averaged; ``raw`` holds ``n_seeds``, the sorted ``seeds``,
    ``ratio_std`` (sample std of the ratio, None for one run) and the members' ``run_keys``. Other
    fields come from the cell's first record. Cells keep the order of their first appearance.

    Args:
        records: Sweep records, repeated seeds of a cell anywhere in the sequence.

    Returns:
        The seed-mean records; a cell with one run is that run with the ``raw`` fields added.
    """
    cells: dict[tuple[str, ...], list[SweepRecord]] = {}
    for record in records:
        cells.setdefault(cell_key(record), []).append(record)
    out = []
    for members in cells.values():
        first = members[0]
        ratios = [r.ratio for r in members if r.ratio is not None]
        names = dict.fromkeys(k for r in members for k in r.meta_features)
        meta = {k: _mean(r.meta_features.get(k) for r in members) for k in names}
        raw = {
            **first.raw,
            "n_seeds": len(members),
            "seeds": sorted({r.seed for r in members if r.seed is not None}),
            "ratio_std": _std(ratios),
            "run_keys": [r.raw.get("run_key") or r.run_id for r in members],
        }
        out.append(
            replace(
                first,
                student_score=_mean(r.student_score for r in members),
                teacher_score=_mean(r.teacher_score for r in members),
                ratio=_mean(ratios),
                no_kd_score=_mean(r.no_kd_score for r in members),
                wall_time_s=_mean(r.wall_time_s for r in members),
                meta_features=meta,
                seed=None if len(members) > 1 else first.seed,
                raw=raw,
            )
        )
    return out
