"""Sweep schemas: ``SweepCreate`` in, ``SweepPublic`` out, ``SweepsPublic`` = ``data`` + ``count``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.domain import Sweep, SweepRun
from app.schemas.jobs import ResourcesIn
from models.config import KDConfig, ModelPath, StudentSpec, TeacherTrainingConfig, TrainingConfig

InterLoss = Literal["none", "mse", "cos", "ce", "att_mse", "pkd", "mi", "infonce", "tuba", "nwj"]
Augmenter = Literal["contextual", "backtranslation", "random", "delete", "insert", "synonym", "embedding"]
Alpha = Annotated[float, Field(ge=0.0, le=1.0)]
AugP = Annotated[float, Field(gt=0.0, le=1.0)]
RUN_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "recorded")


class SweepGridIn(BaseModel):
    """Options of the swept space; a field left out keeps the default sweep grid's options
    (every engine component that can run on the server)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    intermediate_losses: list[InterLoss] | None = Field(None, min_length=1)
    strategies: list[Literal["skip", "last", "emd"]] | None = Field(None, min_length=1)
    mi_alphas: list[Alpha] | None = Field(
        None, min_length=1, max_length=101, description="MI-alpha values in [0, 1]"
    )
    kd_losses: list[Literal["ce", "mse", "kl"]] | None = Field(None, min_length=1)
    mixup: list[bool] | None = Field(None, min_length=1, max_length=2)
    augmenters: list[Augmenter] | None = Field(None, max_length=7)
    max_pipeline_length: int | None = Field(None, ge=0, le=3, description="0 turns augmentation off")
    aug_ps: list[AugP] | None = Field(None, min_length=1, max_length=100)

    def overrides(self) -> dict[str, Any]:
        """The given fields as ``SearchGrid`` keyword arguments (lists become tuples)."""
        data = self.model_dump(exclude_none=True)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


class SweepCreate(BaseModel):
    """A sweep: ``budget`` pipelines for every (dataset, student) pair, each an ordinary job."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(None, max_length=200)
    dataset_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=50)
    teacher: ModelPath | None = Field(None, description="default minilm-l6")
    students: list[StudentSpec] = Field(
        default_factory=lambda: [StudentSpec(num_layers=2)], min_length=1, max_length=10
    )
    space: Literal["grid", "random"] = Field(
        "grid", description="grid: the full grid in a balanced order; random: a seeded uniform sample"
    )
    budget: int = Field(ge=1, le=10_000, description="pipelines per (dataset, student) pair")
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="seed of the plan (the training seed is training.seed)"
    )
    grid: SweepGridIn | None = None
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="settings of every run")
    teacher_training: TeacherTrainingConfig = TeacherTrainingConfig()
    resources: ResourcesIn = ResourcesIn()
    deliver: bool = Field(
        False,
        description="export every run's student (ONNX + int8) and build its report card; off by default, "
        "since sweep runs feed the history (autodistiller export RUN_DIR delivers one later)",
    )

    def base_config(self) -> KDConfig:
        return KDConfig(training=self.training)


class SweepRunPublic(BaseModel):
    position: int = Field(description="place in its (dataset, student) group's order")
    run_key: str
    dataset_id: str
    student: str
    status: str = Field(description="the job's status, or 'recorded' when an existing record answers it")
    job_id: str | None
    ratio: float | None
    student_score: float | None
    kd_config: dict[str, Any] | None

    @classmethod
    def of(cls, run: SweepRun) -> SweepRunPublic:
        result = (run.job.result if run.job else run.record) or {}
        spec = (run.job.payload.get("spec") or {}) if run.job else {}
        return cls(
            position=run.position,
            run_key=run.run_key,
            dataset_id=run.dataset_id,
            student=run.student,
            status=run.status,
            job_id=run.job.id if run.job else None,
            ratio=result.get("ratio"),
            student_score=result.get("student_score"),
            kd_config=spec.get("kd_config") or result.get("kd_config"),
        )


class SweepPublic(BaseModel):
    id: str
    name: str
    request: dict[str, Any]
    n_runs: int
    counts: dict[str, int] = Field(description="runs per state: queued, running, succeeded, ...")
    done: bool = Field(description="no run is queued or running")
    best: SweepRunPublic | None = Field(description="the finished run with the highest ratio so far")
    job_ids: list[str]
    runs: list[SweepRunPublic] | None = Field(None, description="every run (GET /sweeps/{id} only)")
    created_at: datetime

    @classmethod
    def of(cls, sweep: Sweep, runs: list[SweepRun], *, with_runs: bool = True) -> SweepPublic:
        public = [SweepRunPublic.of(r) for r in runs]
        counts = dict.fromkeys(RUN_STATES, 0)
        for r in public:
            counts[r.status] = counts.get(r.status, 0) + 1
        finished = [r for r in public if r.status in ("succeeded", "recorded") and r.ratio is not None]
        return cls(
            id=sweep.id,
            name=sweep.name,
            request=sweep.request,
            n_runs=sweep.n_runs,
            counts=counts,
            done=counts["queued"] + counts["running"] == 0,
            best=max(finished, key=lambda r: r.ratio or 0.0) if finished else None,
            job_ids=list(dict.fromkeys(r.job_id for r in public if r.job_id)),
            runs=public if with_runs else None,
            created_at=sweep.created_at,
        )


class SweepsPublic(BaseModel):
    data: list[SweepPublic]
    count: int


class SweepRecordDictsPublic(BaseModel):
    """Sweep records as ``recommender.SweepRecord.to_dict`` dicts (``SweepRecord.from_dict`` reads them)."""

    data: list[dict[str, Any]]
    count: int
