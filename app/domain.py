"""Plain objects the store returns (never ORM rows), and the job state machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.errors import IllegalTransitionError


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(StrEnum):
    """A job's state. ``succeeded``, ``failed`` and ``cancelled`` are terminal: a re-run is a new job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# running -> queued is the requeue of a job whose worker died (its lease expired): the same
# attempt chain resumes from its checkpoint, which is not a re-run.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """The states from which ``target`` may be entered."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def check_transition(job_id: str, current: JobStatus, target: JobStatus) -> None:
    """Raise :class:`IllegalTransitionError` unless ``current -> target`` is allowed."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransitionError(job_id, current.value, target.value)


class KeyScope(StrEnum):
    """What an API key may do. Each scope includes the ones before it: ``read`` lists and downloads
    the key's own objects (and built-in datasets), ``write`` also creates, cancels and deletes them,
    ``admin`` also sees and touches every key's objects and refits the meta-learner."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def allows(self, needed: KeyScope) -> bool:
        return _SCOPE_RANK[self] >= _SCOPE_RANK[needed]


_SCOPE_RANK = {KeyScope.READ: 0, KeyScope.WRITE: 1, KeyScope.ADMIN: 2}


@dataclass(frozen=True)
class Caller:
    """Who a request acts for: the id of its API key (None with auth off, for an anonymous public
    read, and for the CLI and workers) and whether it sees every key's objects.

    Objects a caller creates carry ``key_id`` as their owner; reads and writes of a caller that
    does not see all are confined to its own objects (a stranger's is "not found").
    """

    key_id: str | None = None
    sees_all: bool = True

    @property
    def owner(self) -> str | None:
        """The owner to confine queries to; None: no confinement."""
        return None if self.sees_all else self.key_id

    def owns(self, owner_key_id: str | None) -> bool:
        return self.sees_all or (owner_key_id is not None and owner_key_id == self.key_id)


SYSTEM = Caller()
"""The caller of in-process code (CLI, workers, auth off): sees everything, owns nothing."""


@dataclass(frozen=True)
class Dataset:
    id: str
    name: str
    source: str  # "upload" | "builtin"
    builtin_name: str | None
    filename: str | None
    digest: str
    task_kind: str
    num_labels: int | None
    labels: list[Any] | None
    n_train: int
    n_dev: int
    options: dict[str, Any]
    meta_features: dict[str, Any]
    created_at: datetime
    owner_key_id: str | None = None


@dataclass(frozen=True)
class Recommendation:
    id: str
    dataset_id: str | None
    meta_features: dict[str, Any]
    teacher: dict[str, Any]
    k: int
    meta_learner_version: int | None
    items: list[dict[str, Any]]
    created_at: datetime
    owner_key_id: str | None = None


@dataclass(frozen=True)
class Resources:
    gpu: bool = False
    time_budget_s: int = 3600


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: JobStatus
    dataset_id: str | None
    recommendation_id: str | None
    rank: int | None
    payload: dict[str, Any]
    resources: Resources
    idempotency_key: str | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_claimed_at: datetime | None = None
    request_hash: str | None = field(default=None, repr=False)
    owner_key_id: str | None = None


@dataclass(frozen=True)
class JobEvent:
    id: int
    job_id: str
    type: str  # "status" | "progress" | "log"
    data: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class StoredSweepRecord:
    """A stored sweep record: the recommender's record dict plus its provenance."""

    id: int
    job_id: str | None
    dataset_id: str | None
    source: str  # "job" | "imported"
    record: dict[str, Any]
    code_version: str | None
    hardware: str | None
    seed: int | None
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    scope: KeyScope = KeyScope.WRITE

    def caller(self) -> Caller:
        """The caller this key makes requests as."""
        return Caller(key_id=self.id, sees_all=self.scope == KeyScope.ADMIN)


@dataclass(frozen=True)
class MetaLearnerVersion:
    version: int
    source: str  # "shipped" | "refit" | "artifact"
    path: str
    n_records: int
    records_digest: str | None
    evaluation: dict[str, Any] | None
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class Sweep:
    """A sweep: the request it was planned from and how many runs the plan has."""

    id: str
    name: str
    request: dict[str, Any]
    n_runs: int
    created_at: datetime
    owner_key_id: str | None = None


@dataclass(frozen=True)
class SweepRun:
    """One planned run of a sweep with its job's state (``job`` is None for a run whose record
    existed already; then ``record`` holds that record)."""

    sweep_id: str
    position: int
    run_key: str
    dataset_id: str
    student: str
    job: Job | None
    record: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        """The job's status, or ``recorded`` for a run answered by an existing record."""
        if self.job is not None:
            return self.job.status.value
        return "recorded" if self.record is not None else "missing"
