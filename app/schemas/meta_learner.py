"""Meta-learner and sweep-record schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.domain import MetaLearnerVersion, StoredSweepRecord


class MetaLearnerVersionPublic(BaseModel):
    version: int
    source: str
    n_records: int
    records_digest: str | None
    evaluation: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, v: MetaLearnerVersion) -> MetaLearnerVersionPublic:
        return cls(
            version=v.version,
            source=v.source,
            n_records=v.n_records,
            records_digest=v.records_digest,
            evaluation=v.evaluation,
            created_at=v.created_at,
        )


class MetaLearnerPublic(BaseModel):
    available: bool = Field(description="whether /recommend can answer")
    active: MetaLearnerVersionPublic | None
    records: int = Field(description="sweep records in the database")
    new_records: int = Field(description="records added since the active version was fitted")
    auto_refit_every: int = Field(description="automatic refit after this many new records (0: off)")
    history: list[MetaLearnerVersionPublic]


class RefitRequest(BaseModel):
    # a misspelt field would otherwise be dropped and the (costly) evaluation run by default
    model_config = ConfigDict(extra="forbid")

    evaluate: bool = Field(True, description="run leave-one-dataset-out evaluation (needs 2+ datasets)")


class SweepRecordPublic(BaseModel):
    id: int
    job_id: str | None
    dataset_id: str | None
    source: str
    record: dict[str, Any]
    code_version: str | None
    hardware: str | None
    seed: int | None
    created_at: datetime

    @classmethod
    def of(cls, r: StoredSweepRecord) -> SweepRecordPublic:
        return cls(**{name: getattr(r, name) for name in cls.model_fields})


class SweepRecordsPublic(BaseModel):
    data: list[SweepRecordPublic]
    count: int
