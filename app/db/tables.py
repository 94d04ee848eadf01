"""SQLAlchemy table definitions. Rows never leave ``app.store``: it converts them to ``app.domain``.

The Alembic migrations in ``app/migrations`` must create exactly this schema (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    builtin_name: Mapped[str | None] = mapped_column(String(100))
    filename: Mapped[str | None] = mapped_column(String(255))
    path: Mapped[str | None] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    task_kind: Mapped[str] = mapped_column(String(32))
    num_labels: Mapped[int | None] = mapped_column(Integer)
    labels: Mapped[list[Any] | None] = mapped_column(JSON)
    n_train: Mapped[int] = mapped_column(Integer)
    n_dev: Mapped[int] = mapped_column(Integer)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    meta_features: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # the API key that created the row (None: made with auth off, by the CLI, or before keys had
    # owners); not a foreign key: keys are revoked, never deleted
    owner_key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class RecommendationRow(Base):
    __tablename__ = "recommendations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    meta_features: Mapped[dict[str, Any]] = mapped_column(JSON)
    teacher: Mapped[dict[str, Any]] = mapped_column(JSON)
    k: Mapped[int] = mapped_column(Integer)
    meta_learner_version: Mapped[int | None] = mapped_column(Integer)
    items: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the API key that created the row (None: made with auth off, by the CLI, or before keys had
    # owners); not a foreign key: keys are revoked, never deleted
    owner_key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"), index=True)
    recommendation_id: Mapped[str | None] = mapped_column(ForeignKey("recommendations.id"))
    rank: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    gpu: Mapped[bool] = mapped_column(Boolean, default=False)
    time_budget_s: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    request_hash: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # the API key that created the row (None: made with auth off, by the CLI, or before keys had
    # owners); not a foreign key: keys are revoked, never deleted
    owner_key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class JobEventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SweepRecordRow(Base):
    __tablename__ = "sweep_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # unique: a job appends at most one record, however often it is retried
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    source: Mapped[str] = mapped_column(String(16))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    code_version: Mapped[str | None] = mapped_column(String(64))
    hardware: Mapped[str | None] = mapped_column(String(200))
    seed: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SweepRow(Base):
    """A sweep: its request and plan settings; its runs are in ``sweep_runs``."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_runs: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the API key that created the row (None: made with auth off, by the CLI, or before keys had
    # owners); not a foreign key: keys are revoked, never deleted
    owner_key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class SweepRunRow(Base):
    """One planned run of a sweep: its content address and the job that ran (or runs) it.

    ``job_id`` is null when a sweep record with the same run key existed already (imported
    history), so no job was needed.
    """

    __tablename__ = "sweep_runs"
    __table_args__ = (UniqueConstraint("sweep_id", "run_key", name="uq_sweep_runs_sweep_run_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    run_key: Mapped[str] = mapped_column(String(64), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    student: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))  # app.domain.KeyScope
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MetaLearnerVersionRow(Base):
    __tablename__ = "meta_learner_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    n_records: Mapped[int] = mapped_column(Integer)
    records_digest: Mapped[str | None] = mapped_column(String(64))
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SearchRow(Base):
    """A budgeted search: its request, state and result; its trials are in ``search_trials``.

    ``driver_id`` and ``driver_lease_until`` let one driver at a time advance the search (several
    workers may share a database).
    """

    __tablename__ = "searches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | succeeded | failed | cancelled
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    portfolio: Mapped[list[Any]] = mapped_column(JSON)  # the meta-learner's picks the search starts from
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    best_trial: Mapped[int | None] = mapped_column(Integer)
    best_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    stop_reason: Mapped[str | None] = mapped_column(Text)
    driver_id: Mapped[str | None] = mapped_column(String(100))
    driver_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # the API key that created the row (None: made with auth off, or by the CLI)
    owner_key_id: Mapped[str | None] = mapped_column(String(32), index=True)


class SearchTrialRow(Base):
    """One trial of a search: a pipeline trained at growing fidelity, one ordinary job per rung.

    ``rungs`` lists the finished rungs (epochs, score, ratio, job id, seconds); ``job_id`` is the
    job of the rung in progress (None when the trial is not training).
    """

    __tablename__ = "search_trials"
    __table_args__ = (UniqueConstraint("search_id", "number", name="uq_search_trials_search_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(
        String(16)
    )  # running | pruned | stopped | complete | failed | cancelled
    source: Mapped[str] = mapped_column(String(16))  # portfolio | sampler
    portfolio_rank: Mapped[int | None] = mapped_column(Integer)
    kd_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    rungs: Mapped[list[Any]] = mapped_column(JSON)
    target_epochs: Mapped[int | None] = mapped_column(Integer)  # the fidelity of the rung in progress
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SearchEventRow(Base):
    """What a search did, in order (trial started, judged, promoted; search finished): its SSE stream."""

    __tablename__ = "search_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
