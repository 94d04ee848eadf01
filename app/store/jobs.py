"""Jobs and their events: the queue. The database is the single source of truth.

Every state change is one conditional ``UPDATE ... WHERE status IN (allowed sources)`` in a write
transaction together with its ``status`` event, so two actors racing on a job cannot both win and
an illegal change raises :class:`IllegalTransitionError` instead of silently overwriting.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.engine import Database
from app.db.tables import JobEventRow, JobRow, SweepRecordRow
from app.domain import Job, JobEvent, JobStatus, Resources, check_transition, sources_of, utcnow
from app.errors import IllegalTransitionError, NotFoundError


def job_from_row(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        status=JobStatus(row.status),
        dataset_id=row.dataset_id,
        recommendation_id=row.recommendation_id,
        rank=row.rank,
        payload=dict(row.payload),
        resources=Resources(gpu=row.gpu, time_budget_s=row.time_budget_s),
        idempotency_key=row.idempotency_key,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        worker_id=row.worker_id,
        lease_expires_at=row.lease_expires_at,
        cancel_requested=row.cancel_requested,
        progress=row.progress,
        result=row.result,
        error_code=row.error_code,
        error_message=row.error_message,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_claimed_at=row.last_claimed_at,
        request_hash=row.request_hash,
        owner_key_id=row.owner_key_id,
    )


def _event_to_domain(row: JobEventRow) -> JobEvent:
    return JobEvent(
        id=row.id, job_id=row.job_id, type=row.type, data=dict(row.data), created_at=row.created_at
    )


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- creation and reads -------------------------------------------------------------------
    def create(
        self,
        *,
        kind: str,
        payload: dict[str, Any],
        resources: Resources,
        max_attempts: int,
        dataset_id: str | None = None,
        recommendation_id: str | None = None,
        rank: int | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        owner_key_id: str | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job; with an idempotency key already used, return that job instead.

        Returns:
            ``(job, created)``; ``created`` is False when an existing job was returned. The
            caller compares ``job.request_hash`` to detect a key reused for another request.
        """
        if idempotency_key is not None:
            existing = self.by_idempotency_key(idempotency_key)
            if existing is not None:
                return existing, False
        now = utcnow()
        row = JobRow(
            id=uuid.uuid4().hex,
            kind=kind,
            status=JobStatus.QUEUED.value,
            dataset_id=dataset_id,
            recommendation_id=recommendation_id,
            rank=rank,
            payload=payload,
            gpu=resources.gpu,
            time_budget_s=resources.time_budget_s,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            attempts=0,
            max_attempts=max_attempts,
            cancel_requested=False,
            created_at=now,
            owner_key_id=owner_key_id,
        )
        try:
            with self.db.write() as s:
                s.add(row)
                s.flush()
                self._event(s, row.id, "status", {"status": JobStatus.QUEUED.value}, now)
                job = job_from_row(row)
        except IntegrityError:
            # a concurrent request with the same key won the insert
            existing = self.by_idempotency_key(idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
        return job, True

    def by_idempotency_key(self, key: str) -> Job | None:
        with self.db.read() as s:
            row = s.scalar(select(JobRow).where(JobRow.idempotency_key == key))
            return job_from_row(row) if row else None

    def get(self, job_id: str, *, owner: str | None = None) -> Job:
        """A job; with ``owner``, only one that key created (another's is "not found" too)."""
        with self.db.read() as s:
            row = s.get(JobRow, job_id)
            if row is None or (owner is not None and row.owner_key_id != owner):
                raise NotFoundError("job", job_id)
            return job_from_row(row)

    def list(
        self,
        *,
        status: JobStatus | None = None,
        dataset_id: str | None = None,
        kind: str | None = None,
        owner: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Job], int]:
        """A page of jobs, newest first, and how many match; ``owner`` keeps one key's jobs."""
        conds: list[ColumnElement[bool]] = []
        if owner is not None:
            conds.append(JobRow.owner_key_id == owner)
        if status is not None:
            conds.append(JobRow.status == status.value)
        if dataset_id is not None:
            conds.append(JobRow.dataset_id == dataset_id)
        if kind is not None:
            conds.append(JobRow.kind == kind)
        where = and_(*conds) if conds else and_(True)
        with self.db.read() as s:
            count = s.scalar(select(func.count()).select_from(JobRow).where(where)) or 0
            rows = s.scalars(
                select(JobRow)
                .where(where)
                .order_by(JobRow.created_at.desc(), JobRow.id)
                .offset(offset)
                .limit(limit)
            ).all()
            return [job_from_row(r) for r in rows], count

    def count_by_status(self) -> dict[str, int]:
        with self.db.read() as s:
            rows = s.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all()
            return {status: n for status, n in rows}

    # ---- the queue ----------------------------------------------------------------------------
    def claim(self, worker_id: str, *, lease_s: float, gpu_ok: bool, kinds: list[str]) -> Job | None:
        """Atomically move the oldest claimable queued job to ``running`` for ``worker_id``.

        Postgres: ``SELECT ... FOR UPDATE SKIP LOCKED`` lets concurrent workers pass over a row
        another one is claiming. SQLite: write transactions begin IMMEDIATE (one writer at a
        time) and the update is conditional on ``status = 'queued'`` in any case.
        """
        now = utcnow()
        with self.db.write() as s:
            query = select(JobRow.id).where(JobRow.status == JobStatus.QUEUED.value, JobRow.kind.in_(kinds))
            if not gpu_ok:
                query = query.where(JobRow.gpu.is_(False))
            query = query.order_by(JobRow.created_at, JobRow.id).limit(1)
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            job_id = s.scalar(query)
            if job_id is None:
                return None
            result = s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.RUNNING.value,
                    worker_id=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempts=JobRow.attempts + 1,
                    started_at=func.coalesce(JobRow.started_at, now),
                    last_claimed_at=now,
                )
            )
            if result.rowcount != 1:
                return None
            row = s.get(JobRow, job_id, populate_existing=True)
            if row is None:
                raise NotFoundError("job", job_id)
            self._event(
                s,
                job_id,
                "status",
                {"status": JobStatus.RUNNING.value, "attempt": row.attempts, "worker_id": worker_id},
                now,
            )
            return job_from_row(row)

    def heartbeat(self, job_id: str, worker_id: str, *, lease_s: float) -> bool:
        """Extend the lease; False if the job is no longer running under ``worker_id``."""
        with self.db.write() as s:
            result = s.execute(
                update(JobRow)
                .where(
                    JobRow.id == job_id,
                    JobRow.worker_id == worker_id,
                    JobRow.status == JobStatus.RUNNING.value,
                )
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
            )
            return result.rowcount == 1

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        worker_id: str | None = None,
        sweep_record: dict[str, Any] | None = None,
        event: dict[str, Any] | None = None,
        **values: Any,
    ) -> Job:
        """Move a job to ``target`` if the state machine allows it from its current state.

        Args:
            job_id: The job.
            target: The new status.
            worker_id: If given, the change only applies while that worker holds the job.
            sweep_record: Columns of a ``sweep_records`` row appended in the same transaction
                (a job's result and its record land together or not at all).
            event: Extra data for the ``status`` event.
            **values: Other columns to set (result, error_code, error_message, ...).

        Raises:
            NotFoundError: No such job.
            IllegalTransitionError: The current state does not allow ``target`` (or the job is
                no longer held by ``worker_id``).
        """
        now = utcnow()
        sources = [s.value for s in sources_of(target)]
        conds = [JobRow.id == job_id, JobRow.status.in_(sources)]
        if worker_id is not None:
            conds.append(JobRow.worker_id == worker_id)
        if target == JobStatus.SUCCEEDED:  # cancel is final: see succeed()
            conds.append(JobRow.cancel_requested.is_(False))
        if target.terminal:
            values.setdefault("finished_at", now)
            values.setdefault("lease_expires_at", None)
        if target == JobStatus.QUEUED:
            values.setdefault("worker_id", None)
            values.setdefault("lease_expires_at", None)
        with self.db.write() as s:
            result = s.execute(update(JobRow).where(*conds).values(status=target.value, **values))
            if result.rowcount != 1:
                row = s.get(JobRow, job_id)
                if row is None:
                    raise NotFoundError("job", job_id)
                current = JobStatus(row.status)
                check_transition(job_id, current, target)  # raises for an illegal change
                raise IllegalTransitionError(
                    job_id, f"{current.value} (held by {row.worker_id})", target.value
                )
            if sweep_record is not None:
                s.add(SweepRecordRow(job_id=job_id, created_at=now, **sweep_record))
            data = {"status": target.value, **(event or {})}
            if values.get("error_code"):
                data.update(error_code=values["error_code"], error_message=values.get("error_message"))
            self._event(s, job_id, "status", data, now)
            row = s.get(JobRow, job_id, populate_existing=True)
            if row is None:
                raise NotFoundError("job", job_id)
            return job_from_row(row)

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job now; flag a running one so that it ends ``cancelled``.

        Cancel is final. A flagged job can no longer succeed (:meth:`succeed` is conditional on
        no cancel request), so it ends ``cancelled`` with no sweep record, whatever moment the
        flag lands: queued, just claimed, running or finishing. The one race left is decided by
        which write commits first: once the result is committed, the job is finished and this
        raises (409, too late) instead of answering "cancellation requested".

        Raises:
            NotFoundError: No such job.
            IllegalTransitionError: The job already finished.
        """
        now = utcnow()
        with self.db.write() as s:
            query = select(JobRow).where(JobRow.id == job_id)
            if self.db.dialect == "postgresql":
                query = query.with_for_update()  # SQLite: the IMMEDIATE transaction serialises writers
            row = s.scalar(query)
            if row is None:
                raise NotFoundError("job", job_id)
            current = JobStatus(row.status)
            if current == JobStatus.QUEUED:
                s.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status == JobStatus.QUEUED.value)
                    .values(
                        status=JobStatus.CANCELLED.value,
                        cancel_requested=True,
                        finished_at=now,
                        lease_expires_at=None,
                    )
                )
                data = {"status": JobStatus.CANCELLED.value, "reason": "cancelled while queued"}
                self._event(s, job_id, "status", data, now)
            elif current == JobStatus.RUNNING:
                if not row.cancel_requested:
                    s.execute(
                        update(JobRow)
                        .where(JobRow.id == job_id, JobRow.status == JobStatus.RUNNING.value)
                        .values(cancel_requested=True)
                    )
                    self._event(s, job_id, "log", {"message": "cancellation requested"}, now)
            else:
                raise IllegalTransitionError(
                    job_id, f"already {current.value} (too late to cancel)", JobStatus.CANCELLED.value
                )
            row = s.get(JobRow, job_id, populate_existing=True)
            if row is None:
                raise NotFoundError("job", job_id)
            return job_from_row(row)

    def succeed(
        self, job_id: str, *, worker_id: str, result: dict[str, Any], sweep_record: dict[str, Any] | None
    ) -> Job:
        """Record a finished run: ``succeeded`` with its sweep record, or ``cancelled`` without one.

        One transaction. The ``succeeded`` update is conditional on no cancel request; when a
        cancel was requested first, the job ends ``cancelled`` and its result and record are
        dropped (a job told "cancellation requested" never succeeds and never feeds the history).

        Raises:
            NotFoundError: No such job.
            IllegalTransitionError: The job is no longer running under ``worker_id``.
        """
        now = utcnow()
        held = [
            JobRow.id == job_id,
            JobRow.status == JobStatus.RUNNING.value,
            JobRow.worker_id == worker_id,
        ]
        done = {"finished_at": now, "lease_expires_at": None}
        with self.db.write() as s:
            ok = s.execute(
                update(JobRow)
                .where(*held, JobRow.cancel_requested.is_(False))
                .values(status=JobStatus.SUCCEEDED.value, result=result, **done)
            )
            if ok.rowcount == 1:
                if sweep_record is not None:
                    s.add(SweepRecordRow(job_id=job_id, created_at=now, **sweep_record))
                self._event(s, job_id, "status", {"status": JobStatus.SUCCEEDED.value}, now)
            else:
                cancelled = s.execute(
                    update(JobRow)
                    .where(*held, JobRow.cancel_requested.is_(True))
                    .values(status=JobStatus.CANCELLED.value, **done)
                )
                if cancelled.rowcount != 1:
                    row = s.get(JobRow, job_id)
                    if row is None:
                        raise NotFoundError("job", job_id)
                    raise IllegalTransitionError(
                        job_id, f"{row.status} (held by {row.worker_id})", JobStatus.SUCCEEDED.value
                    )
                reason = "cancel requested before the result was recorded; the result is discarded"
                self._event(s, job_id, "status", {"status": JobStatus.CANCELLED.value, "reason": reason}, now)
            row = s.get(JobRow, job_id, populate_existing=True)
            if row is None:
                raise NotFoundError("job", job_id)
            return job_from_row(row)

    def expired(self, now: datetime | None = None) -> list[Job]:
        """Running jobs whose lease has expired (their worker died or hung)."""
        now = now or utcnow()
        with self.db.read() as s:
            rows = s.scalars(
                select(JobRow).where(
                    JobRow.status == JobStatus.RUNNING.value,
                    or_(JobRow.lease_expires_at.is_(None), JobRow.lease_expires_at < now),
                )
            ).all()
            return [job_from_row(r) for r in rows]

    def release_expired(self, job: Job) -> Job | None:
        """Requeue (or fail, or cancel) one expired job; None if it changed meanwhile.

        The update is conditional on the job still being held by the same worker with an
        expired lease, so a worker that heart-beats just in time keeps its job.
        """
        now = utcnow()
        if job.cancel_requested:
            target, extra = JobStatus.CANCELLED, {}
        elif job.attempts >= job.max_attempts:
            target, extra = (
                JobStatus.FAILED,
                {
                    "error_code": "worker_lost",
                    "error_message": f"the worker stopped responding on all {job.attempts} attempt(s)",
                },
            )
        else:
            target, extra = JobStatus.QUEUED, {}
        conds = [
            JobRow.id == job.id,
            JobRow.status == JobStatus.RUNNING.value,
            or_(JobRow.lease_expires_at.is_(None), JobRow.lease_expires_at < now),
        ]
        conds.append(
            JobRow.worker_id.is_(None) if job.worker_id is None else JobRow.worker_id == job.worker_id
        )
        with self.db.write() as s:
            values: dict[str, Any] = {"status": target.value, "lease_expires_at": None, **extra}
            if target == JobStatus.QUEUED:
                values["worker_id"] = None
            else:
                values["finished_at"] = now
            result = s.execute(update(JobRow).where(*conds).values(**values))
            if result.rowcount != 1:
                return None
            self._event(
                s,
                job.id,
                "status",
                {"status": target.value, "reason": "lease expired", "attempt": job.attempts, **extra},
                now,
            )
            row = s.get(JobRow, job.id, populate_existing=True)
            return job_from_row(row) if row else None

    # ---- progress and events ------------------------------------------------------------------
    def set_progress(self, job_id: str, progress: dict[str, Any], *, store_event: bool) -> None:
        with self.db.write() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.status == JobStatus.RUNNING.value)
                .values(progress=progress)
            )
            if store_event:
                self._event(s, job_id, "progress", progress, utcnow())

    def add_event(self, job_id: str, type_: str, data: dict[str, Any]) -> None:
        with self.db.write() as s:
            self._event(s, job_id, type_, data, utcnow())

    def events(self, job_id: str, *, after_id: int = 0, limit: int = 500) -> list[JobEvent]:
        """Events of a job with an id above ``after_id``, oldest first.

        An ``after_id`` beyond the column's range (Postgres ``integer``: 2**31 - 1) has no events
        after it; it is answered without a query (binding it would overflow the column's type).
        """
        if after_id >= self._max_event_id():
            return []
        with self.db.read() as s:
            rows = s.scalars(
                select(JobEventRow)
                .where(JobEventRow.job_id == job_id, JobEventRow.id > after_id)
                .order_by(JobEventRow.id)
                .limit(limit)
            ).all()
            return [_event_to_domain(r) for r in rows]

    def _max_event_id(self) -> int:
        # job_events.id is an INTEGER: 32 bits on Postgres, 64 on SQLite
        return 2**31 - 1 if self.db.dialect == "postgresql" else 2**63 - 1

    @staticmethod
    def _event(s: Session, job_id: str, type_: str, data: dict[str, Any], at: datetime) -> None:
        s.add(JobEventRow(job_id=job_id, type=type_, data=data, created_at=at))
