"""Sweeps and their runs. A run points at the job that trains it; jobs themselves are unchanged.

Runs are content-addressed by their run key (``recommender.sweep.run_key``), so a later sweep can
find the job or the sweep record that already answers one of its runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, true

from app.db.engine import Database
from app.db.tables import JobRow, SweepRecordRow, SweepRow, SweepRunRow
from app.domain import Job, Sweep, SweepRun, utcnow
from app.errors import NotFoundError
from app.store.jobs import job_from_row

_CHUNK = 500  # bound parameters per IN (...) list: well under every backend's limit


def _to_domain(row: SweepRow) -> Sweep:
    return Sweep(
        id=row.id,
        name=row.name,
        request=dict(row.request),
        n_runs=row.n_runs,
        created_at=row.created_at,
        owner_key_id=row.owner_key_id,
    )


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def with_run_key(record: dict[str, Any], run_key: str) -> dict[str, Any]:
    """A copy of a record dict whose ``raw`` carries its run key (its content address)."""
    return {**record, "raw": {**(record.get("raw") or {}), "run_key": run_key}}


class SweepStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self, name: str, request: dict[str, Any], n_runs: int, *, owner_key_id: str | None = None
    ) -> Sweep:
        with self.db.write() as s:
            row = SweepRow(
                id=uuid.uuid4().hex,
                name=name,
                request=request,
                n_runs=n_runs,
                created_at=utcnow(),
                owner_key_id=owner_key_id,
            )
            s.add(row)
            s.flush()
            return _to_domain(row)

    def add_run(
        self, sweep_id: str, *, position: int, run_key: str, dataset_id: str, student: str, job_id: str | None
    ) -> None:
        """Link one planned run to the job that answers it (None: an existing record does)."""
        with self.db.write() as s:
            s.add(
                SweepRunRow(
                    sweep_id=sweep_id,
                    position=position,
                    run_key=run_key,
                    job_id=job_id,
                    dataset_id=dataset_id,
                    student=student,
                    created_at=utcnow(),
                )
            )

    def get(self, sweep_id: str, *, owner: str | None = None) -> Sweep:
        """A sweep; with ``owner``, only one that key created."""
        with self.db.read() as s:
            row = s.get(SweepRow, sweep_id)
            if row is None or (owner is not None and row.owner_key_id != owner):
                raise NotFoundError("sweep", sweep_id)
            return _to_domain(row)

    def list(self, *, offset: int = 0, limit: int = 50, owner: str | None = None) -> tuple[list[Sweep], int]:
        mine = SweepRow.owner_key_id == owner if owner is not None else true()
        with self.db.read() as s:
            count = s.scalar(select(func.count()).select_from(SweepRow).where(mine)) or 0
            rows = s.scalars(
                select(SweepRow)
                .where(mine)
                .order_by(SweepRow.created_at.desc(), SweepRow.id)
                .offset(offset)
                .limit(limit)
            ).all()
            return [_to_domain(r) for r in rows], count

    def latest_jobs(self, run_keys: Iterable[str], *, owner: str | None = None) -> dict[str, Job]:
        """For each run key, the most recently created job any sweep linked to it (with ``owner``:
        only that key's jobs, so a sweep never links, and shows, another key's job)."""
        out: dict[str, Job] = {}
        mine = JobRow.owner_key_id == owner if owner is not None else true()
        with self.db.read() as s:
            for chunk in _chunks(sorted(set(run_keys))):
                rows = s.execute(
                    select(SweepRunRow.run_key, JobRow)
                    .join(JobRow, JobRow.id == SweepRunRow.job_id)
                    .where(SweepRunRow.run_key.in_(chunk), mine)
                    .order_by(JobRow.created_at, JobRow.id)
                ).all()
                for key, job in rows:
                    out[key] = job_from_row(job)  # later rows are newer
        return out

    def records_by_run_key(self, *, owner: str | None = None) -> dict[str, dict[str, Any]]:
        """Every stored sweep record that carries a run key, by key: records appended by a sweep
        run's job (with ``owner``: that key's jobs only), and imported records whose ``raw`` names
        their run key."""
        out: dict[str, dict[str, Any]] = {}
        mine = JobRow.owner_key_id == owner if owner is not None else true()
        with self.db.read() as s:
            for record in s.scalars(select(SweepRecordRow.record).where(SweepRecordRow.job_id.is_(None))):
                key = (record.get("raw") or {}).get("run_key")
                if key:
                    out.setdefault(key, dict(record))
            linked = s.execute(
                select(SweepRunRow.run_key, SweepRecordRow.record)
                .join(SweepRecordRow, SweepRecordRow.job_id == SweepRunRow.job_id)
                .join(JobRow, JobRow.id == SweepRunRow.job_id)
                .where(mine)
            ).all()
            for key, record in linked:
                out.setdefault(key, with_run_key(dict(record), key))
        return out

    def runs(self, sweep_id: str, *, owner: str | None = None) -> list[SweepRun]:
        """The sweep's runs in plan order, with their jobs and (for job-less runs) records.

        Raises:
            NotFoundError: No such sweep (or, with ``owner``, another key's).
        """
        self.get(sweep_id, owner=owner)
        with self.db.read() as s:
            rows = s.execute(
                select(SweepRunRow, JobRow)
                .outerjoin(JobRow, JobRow.id == SweepRunRow.job_id)
                .where(SweepRunRow.sweep_id == sweep_id)
                .order_by(SweepRunRow.id)
            ).all()
            runs = [
                (r.position, r.run_key, r.dataset_id, r.student, job_from_row(j) if j else None)
                for r, j in rows
            ]
        records = self.records_by_run_key(owner=owner) if any(job is None for *_, job in runs) else {}
        return [
            SweepRun(sweep_id, pos, key, dataset, student, job, None if job else records.get(key))
            for pos, key, dataset, student, job in runs
        ]

    def job_run_key(self, job_id: str) -> str | None:
        """The run key a job was created for (None for a job outside every sweep)."""
        with self.db.read() as s:
            return s.scalar(select(SweepRunRow.run_key).where(SweepRunRow.job_id == job_id).limit(1))

    def records(self, sweep_id: str, *, owner: str | None = None) -> list[dict[str, Any]]:
        """The sweep records answering the sweep's runs (plan order), each with its run key."""
        out = []
        runs = self.runs(sweep_id, owner=owner)
        job_ids = [r.job.id for r in runs if r.job is not None]
        by_job: dict[str, dict[str, Any]] = {}
        with self.db.read() as s:
            for chunk in _chunks(job_ids):
                for job_id, record in s.execute(
                    select(SweepRecordRow.job_id, SweepRecordRow.record).where(
                        SweepRecordRow.job_id.in_(chunk)
                    )
                ):
                    by_job[job_id] = dict(record)
        for run in runs:
            if run.job is not None and run.job.id in by_job:
                out.append(with_run_key(by_job[run.job.id], run.run_key))
            elif run.record is not None:
                out.append(run.record)
        return out
