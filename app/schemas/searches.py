"""Search schemas: ``SearchCreate`` in, ``SearchPublic`` out, ``SearchesPublic`` = ``data`` + ``count``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.jobs import ResourcesIn
from app.schemas.recommend import StudentBudget
from app.schemas.sweeps import SweepGridIn
from models.config import ModelPath, StudentSpec, TeacherTrainingConfig, TrainingConfig

TRIAL_STATES = ("running", "complete", "pruned", "stopped", "failed", "cancelled")


class SearchCreate(BaseModel):
    """A budgeted search: a dataset, a teacher, a student (or a size budget) and a run/time budget."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str | None = Field(None, max_length=200)
    dataset_id: str = Field(min_length=1, max_length=64)
    teacher: ModelPath | None = Field(None, description="default minilm-l6")
    student: StudentSpec | None = Field(
        None, description="default: 2 layers, or the best student within budget"
    )
    budget: StudentBudget | None = Field(None, description="size limits on the student when none is named")
    max_runs: int | None = Field(None, ge=1, le=1000, description="most trials (pipelines tried)")
    max_seconds: int | None = Field(
        None, ge=1, le=30 * 86400, description="wall-clock budget: no trial starts or is promoted after it"
    )
    portfolio_size: int = Field(
        3, ge=0, le=20, description="the meta-learner's top picks tried first (0: the sampler alone)"
    )
    min_epochs: int = Field(1, ge=1, le=100, description="fidelity of the first rung")
    reduction_factor: int = Field(3, ge=2, le=10, description="successive halving's eta")
    parallel: int = Field(1, ge=1, le=64, description="trials training at once")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the sampler")
    grid: SweepGridIn | None = Field(None, description="restrict the space explored (as in POST /sweeps)")
    training: TrainingConfig | None = Field(
        None,
        description="settings of the full-fidelity runs (epochs = the last rung); default: the knowledge "
        "base's (5 epochs of batch 16 at lr 5e-4, max length 32), which the meta-learner's history used",
    )
    teacher_training: TeacherTrainingConfig | None = Field(
        None, description="fine-tuning of a head-less teacher; default: the knowledge base's"
    )
    resources: ResourcesIn = ResourcesIn()

    @model_validator(mode="after")
    def _check(self) -> SearchCreate:
        if self.max_runs is None and self.max_seconds is None:
            raise ValueError("give a budget: max_runs and/or max_seconds")
        if self.student is not None and self.budget is not None:
            raise ValueError("give student or budget, not both")
        return self


class SearchTrialPublic(BaseModel):
    id: int = Field(description="the trial's number in its search")
    pipeline: dict[str, Any] = Field(description="the KD config (training settings of the full fidelity)")
    source: str = Field(description="portfolio (a meta-learner pick) or sampler (explored)")
    portfolio_rank: int | None
    status: str = Field(description="running | complete | pruned | stopped | failed | cancelled")
    fidelity: int = Field(description="epochs of the highest rung finished (0: none yet)")
    score: float | None = Field(description="the student's dev score at that fidelity")
    ratio: float | None = Field(description="student score / teacher score at that fidelity")
    seconds: float = Field(description="training time of its finished rungs")
    job_ids: list[str] = Field(description="one ordinary job per rung, in order")


class SearchPublic(BaseModel):
    id: str
    name: str
    status: str = Field(description="running | succeeded | failed | cancelled")
    request: dict[str, Any]
    dataset_id: str
    rungs: list[int] = Field(description="epochs of each fidelity rung")
    counts: dict[str, int] = Field(description="trials per state")
    cancel_requested: bool
    best_trial: int | None
    best_job_id: str | None = Field(description="the delivered student's job (artifacts under /jobs/{id})")
    stop_reason: str | None
    leaderboard: list[SearchTrialPublic] | None = Field(
        None, description="every trial, best first (GET /searches/{id} only)"
    )
    created_at: datetime
    finished_at: datetime | None


class SearchesPublic(BaseModel):
    data: list[SearchPublic]
    count: int
