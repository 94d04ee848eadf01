"""Sweep records: append-only, each with its provenance (source, code version, hardware, seed, time).

There is deliberately no update or delete here. A job's record is appended by
:meth:`app.store.jobs.JobStore.transition` in the transaction that marks the job succeeded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from app.db.engine import Database
from app.db.tables import JobRow, SweepRecordRow
from app.domain import StoredSweepRecord, utcnow


def _to_domain(row: SweepRecordRow) -> StoredSweepRecord:
    return StoredSweepRecord(
        id=row.id,
        job_id=row.job_id,
        dataset_id=row.dataset_id,
        source=row.source,
        record=dict(row.record),
        code_version=row.code_version,
        hardware=row.hardware,
        seed=row.seed,
        created_at=row.created_at,
    )


class SweepRecordStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append_imported(self, records: list[dict[str, Any]], *, source: str = "imported") -> int:
        """Append records that did not come from a job here (e.g. the released sweep table)."""
        now = utcnow()
        with self.db.write() as s:
            for rec in records:
                s.add(
                    SweepRecordRow(
                        job_id=None,
                        dataset_id=None,
                        source=source,
                        record=rec,
                        code_version=rec.get("code_version"),
                        hardware=rec.get("hardware"),
                        seed=rec.get("seed"),
                        created_at=now,
                    )
                )
        return len(records)

    def list(
        self,
        *,
        job_id: str | None = None,
        dataset_id: str | None = None,
        source: str | None = None,
        owner: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[StoredSweepRecord], int]:
        """A page of stored records, oldest first, and how many match.

        ``owner`` keeps the records of that key's jobs and the imported ones (shared history);
        every record still feeds the meta-learner (:meth:`all_records`).
        """
        conds: list[ColumnElement[bool]] = []
        if owner is not None:
            own_jobs = select(JobRow.id).where(JobRow.owner_key_id == owner)
            conds.append(or_(SweepRecordRow.job_id.is_(None), SweepRecordRow.job_id.in_(own_jobs)))
        if job_id is not None:
            conds.append(SweepRecordRow.job_id == job_id)
        if dataset_id is not None:
            conds.append(SweepRecordRow.dataset_id == dataset_id)
        if source is not None:
            conds.append(SweepRecordRow.source == source)
        where = and_(*conds) if conds else and_(True)
        with self.db.read() as s:
            count = s.scalar(select(func.count()).select_from(SweepRecordRow).where(where)) or 0
            rows = s.scalars(
                select(SweepRecordRow).where(where).order_by(SweepRecordRow.id).offset(offset).limit(limit)
            ).all()
            return [_to_domain(r) for r in rows], count

    def all_records(self) -> list[dict[str, Any]]:
        """Every record dict, oldest first (the meta-learner's training set)."""
        with self.db.read() as s:
            return [dict(r) for r in s.scalars(select(SweepRecordRow.record).order_by(SweepRecordRow.id))]

    def count(self, *, source: str | None = None) -> int:
        query = select(func.count()).select_from(SweepRecordRow)
        if source is not None:
            query = query.where(SweepRecordRow.source == source)
        with self.db.read() as s:
            return s.scalar(query) or 0
