"""Job schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain import Job, JobEvent, JobStatus
from models.config import KDConfig, ModelPath, StudentSpec, TeacherTrainingConfig, TrainingConfig

ArtifactName = Literal[
    "report.json",
    "learning_curves.png",
    "student.tar.gz",
    "report_card.html",
    "report_card.json",
    "export.json",
    "student_onnx.tar.gz",
]
ARTIFACT_NAMES: tuple[str, ...] = get_args(ArtifactName)  # in the order a job lists them
METRIC_KEYS = (
    "metric",
    "student_score",
    "teacher_score",
    "ratio",
    "no_kd_score",
    "wall_time_s",
    "best_epoch",
)


class ResourcesIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpu: bool = Field(False, description="run on a worker with a GPU (the job waits for one)")
    time_budget_s: int | None = Field(
        None, ge=1, le=10**8, description="wall-clock limit; default from the server"
    )


class JobCreate(BaseModel):
    """A distillation job: a dataset and either a pipeline or a recommendation and its rank."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset_id: str = Field(min_length=1, max_length=64)
    kd_config: KDConfig | None = None
    recommendation_id: str | None = Field(None, min_length=1, max_length=64)
    rank: int | None = Field(None, ge=1, le=1000, description="1-based rank inside the recommendation")
    training: TrainingConfig | None = Field(
        None,
        description="training budget for a recommended pipeline (epochs, lengths, seed; not part of "
        "the pipeline itself); with kd_config, set kd_config.training instead",
    )
    teacher: ModelPath | None = Field(None, description="default minilm-l6")
    student: StudentSpec | None = None
    teacher_training: TeacherTrainingConfig = TeacherTrainingConfig()
    train_no_kd_baseline: bool = False
    measure_latency: bool = True
    deliver: bool = Field(
        True,
        description="after training, export the student to ONNX and dynamic-int8 ONNX (each verified on "
        "the dev set) and build the report card; false skips both (recorded as skipped)",
    )
    resources: ResourcesIn = ResourcesIn()
    idempotency_key: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:\-]+$")

    @model_validator(mode="after")
    def _check(self) -> JobCreate:
        if (self.kd_config is None) == (self.recommendation_id is None):
            raise ValueError("give exactly one of kd_config and recommendation_id (with rank)")
        if (self.recommendation_id is None) != (self.rank is None):
            raise ValueError("recommendation_id and rank go together")
        if self.training is not None and self.kd_config is not None:
            raise ValueError("training goes with a recommendation; with kd_config use kd_config.training")
        return self


class JobError(BaseModel):
    code: str
    message: str | None


class DeliverablePublic(BaseModel):
    """The deliverable student: export and report card, made after training."""

    status: Literal["ready", "failed", "skipped"]
    offered: list[str] = Field(description="variants offered: hf, onnx, onnx_int8 (verified ones only)")
    report_card: bool = Field(description="report_card.html/.json were written")
    error: JobError | None = None
    summary: dict[str, Any] | None = Field(None, description="the report card's headline numbers")


class ResourcesPublic(BaseModel):
    gpu: bool
    time_budget_s: int


class JobPublic(BaseModel):
    id: str
    kind: str
    status: JobStatus
    dataset_id: str | None
    recommendation_id: str | None
    rank: int | None
    teacher: str | None
    student: dict[str, Any] | None
    kd_config: dict[str, Any] | None
    resources: ResourcesPublic
    attempts: int
    max_attempts: int
    cancel_requested: bool
    progress: dict[str, Any] | None
    metrics: dict[str, Any] | None
    error: JobError | None
    deliverable: DeliverablePublic | None = Field(
        None, description="export and report card of a succeeded job; a failed export shows here"
    )
    artifacts: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job, artifacts: list[str]) -> JobPublic:
        spec = job.payload.get("spec") or {}
        result = job.result or {}
        return cls(
            id=job.id,
            kind=job.kind,
            status=job.status,
            dataset_id=job.dataset_id,
            recommendation_id=job.recommendation_id,
            rank=job.rank,
            teacher=job.payload.get("teacher") or spec.get("teacher"),
            student=spec.get("student"),
            kd_config=spec.get("kd_config"),
            resources=ResourcesPublic(gpu=job.resources.gpu, time_budget_s=job.resources.time_budget_s),
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            cancel_requested=job.cancel_requested,
            progress=job.progress,
            metrics={k: result[k] for k in METRIC_KEYS if k in result} or None,
            error=JobError(code=job.error_code, message=job.error_message) if job.error_code else None,
            deliverable=DeliverablePublic.model_validate(result["deliverable"])
            if isinstance(result.get("deliverable"), dict)
            else None,
            artifacts=artifacts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


class JobEventPublic(BaseModel):
    id: int
    type: str
    data: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, e: JobEvent) -> JobEventPublic:
        return cls(id=e.id, type=e.type, data=e.data, created_at=e.created_at)


class ArtifactsPublic(BaseModel):
    data: list[str]
    count: int
