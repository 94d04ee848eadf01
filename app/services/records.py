"""The sweep record a succeeded job appends: its report plus the dataset's meta-features.

Every record carries its provenance: source ``own``, the job id (``run_id``), the code version,
seed and hardware the engine reported, and the time; and its fidelity: the training and dev examples
the run saw (from the report's dataset block), its epochs and max length (from its KD config).
"""

from __future__ import annotations

import json
from typing import Any

from app.domain import Dataset, Job
from app.services.meta_features import with_teacher
from models.config import KDConfig, ModelDescriptor


def _hardware_text(hardware: Any) -> str | None:
    if hardware is None or isinstance(hardware, str):
        return hardware
    if isinstance(hardware, dict):
        parts = [str(hardware.get(k)) for k in ("gpu", "processor", "platform") if hardware.get(k)]
        if hardware.get("cpu_count"):
            parts.append(f"{hardware['cpu_count']} cpus")
        return "; ".join(parts)[:200] or json.dumps(hardware)[:200]
    return str(hardware)[:200]


def sweep_record_columns(job: Job, report: dict[str, Any], dataset: Dataset | None) -> dict[str, Any]:
    """Columns of the ``sweep_records`` row for ``job`` (see ``JobStore.transition``).

    Raises:
        KeyError, ValueError: The report lacks what a record needs (descriptors, config, scores).
    """
    from recommender import SweepRecord

    teacher = ModelDescriptor.from_dict(report["teacher"])
    student = ModelDescriptor.from_dict(report["student"])
    kd_config = KDConfig.from_dict(report["kd_config"])
    meta = dict(dataset.meta_features) if dataset is not None else {}
    meta = with_teacher(meta, teacher, report.get("teacher_score"))
    # a missing feature is simply absent: the same to the meta-learner, and no all-empty columns
    meta = {k: v for k, v in meta.items() if v is not None}
    digest = (dataset.digest if dataset else None) or (report.get("dataset") or {}).get("digest") or job.id
    name = dataset.name if dataset else (report.get("dataset") or {}).get("name", "dataset")
    seen = report.get("dataset") or {}
    record = SweepRecord(
        dataset_id=f"{name}:{digest[:12]}",
        teacher=teacher,
        student=student,
        kd_config=kd_config,
        student_score=report["student_score"],
        teacher_score=report.get("teacher_score"),
        ratio=report.get("ratio"),
        meta_features=meta,
        no_kd_score=report.get("no_kd_score"),
        metric=report.get("metric"),
        wall_time_s=report.get("wall_time_s"),
        hardware=_hardware_text(report.get("hardware")),
        code_version=report.get("code_version"),
        seed=report.get("seed"),
        created_at=report.get("created_at"),
        source="own",
        run_id=job.id,
        raw={"job_id": job.id, "attempts": job.attempts, "app_dataset_id": job.dataset_id},
        train_examples=seen.get("n_train"),
        dev_examples=seen.get("n_dev"),
        epochs=kd_config.training.epochs,
        max_length=kd_config.training.max_length,
    )
    data = record.to_dict()
    return {
        "dataset_id": job.dataset_id,
        "source": record.source,
        "record": data,
        "code_version": record.code_version,
        "hardware": record.hardware,
        "seed": record.seed,
    }
