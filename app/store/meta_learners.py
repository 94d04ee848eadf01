"""Meta-learner versions: which fitted artifact answers /recommend, and how it was evaluated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from app.db.engine import Database
from app.db.tables import MetaLearnerVersionRow
from app.domain import MetaLearnerVersion, utcnow


def _to_domain(row: MetaLearnerVersionRow) -> MetaLearnerVersion:
    return MetaLearnerVersion(
        version=row.version,
        source=row.source,
        path=row.path,
        n_records=row.n_records,
        records_digest=row.records_digest,
        evaluation=row.evaluation,
        active=row.active,
        created_at=row.created_at,
    )


class MetaLearnerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        *,
        source: str,
        path: str,
        n_records: int,
        records_digest: str | None,
        evaluation: dict[str, Any] | None,
    ) -> MetaLearnerVersion:
        """Register a version and make it the active one (in one transaction)."""
        with self.db.write() as s:
            s.execute(update(MetaLearnerVersionRow).values(active=False))
            row = MetaLearnerVersionRow(
                source=source,
                path=path,
                n_records=n_records,
                records_digest=records_digest,
                evaluation=evaluation,
                active=True,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            return _to_domain(row)

    def active(self) -> MetaLearnerVersion | None:
        with self.db.read() as s:
            row = s.scalar(select(MetaLearnerVersionRow).where(MetaLearnerVersionRow.active.is_(True)))
            return _to_domain(row) if row else None

    def list(self) -> list[MetaLearnerVersion]:
        with self.db.read() as s:
            rows = s.scalars(select(MetaLearnerVersionRow).order_by(MetaLearnerVersionRow.version.desc()))
            return [_to_domain(r) for r in rows]
